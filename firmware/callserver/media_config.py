"""Configuration of the call features of issue 14 that firmware/media and
the call server's media modules serve: session cut-off (sessiontimer.py),
music on hold (hold.py), the conference extension (conference.py).  Only
the statements, their settings and commit checks live here, so that boot
(which parses the configuration) does not load the features' code; the
call server imports that when it starts.
"""
from firmware.compat import const
from firmware.config import schema as S
from firmware.config.schema import ConfigError
from firmware.voice.config import BASE

DEFAULT_SE = const(1800)
DEFAULT_MIN_SE = const(90)
RFC_MIN_SE = const(90)          # RFC 4028 §4: no Min-SE below 90 s

S.register(BASE + " call-server", S.Container(
    "session-timer", "RFC 4028 session timers of the call server's calls", children=(
        S.Leaf("session-expires", S.Integer(0, 86400, "seconds"), default=DEFAULT_SE,
               help="Session interval when the caller asks for none (0: only callers' "
                    "timers); caps a longer request"),
        S.Leaf("min-se", S.Integer(RFC_MIN_SE, 86400, "seconds"), default=DEFAULT_MIN_SE,
               help="Shortest session interval accepted (422 Session Interval Too Small below)"),
    )))
S.register(BASE + " call-server", S.Leaf(
    "max-call-duration", S.Integer(0, 86400, "seconds"), default=0,
    help="Calls are cut off after this long connected (0: unlimited)"))


class CutoffSettings:
    def __init__(self, cfg):
        c = BASE + " call-server "
        self.session_expires = cfg.get(c + "session-timer session-expires")
        self.min_se = cfg.get(c + "session-timer min-se")
        self.max_duration = cfg.get(c + "max-call-duration")


_FILE_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

S.register(BASE + " station", S.Leaf(
    "music-on-hold", S.String(1, 64, charset=_FILE_CHARS),
    help="What a party this station holds hears: tone, none (plain hold, the default) or a "
         "prompt file in the flash's prompts/ directory (G.711 WAV, .ul, .al)"))


def hold_source_of(cfg, name):
    return cfg.get("%s station %s music-on-hold" % (BASE, name)) or "none"


def check(app, s):
    """Commit checks: every music-on-hold file is a G.711 prompt on flash;
    the conference extension is nobody else's."""
    _check_hold(app, s)
    _check_conference(s)


def _check_hold(app, s):
    from firmware.callserver.config import prompt_path
    from firmware.media.prompt import open_prompt, PromptError
    for st in s.stations:
        src = st.music_on_hold
        if src in ("none", "tone"):
            continue
        try:
            open_prompt(prompt_path(app, src)).close()
        except PromptError as e:
            raise ConfigError("%s station %s music-on-hold" % (BASE, st.name), src, str(e))


S.register(BASE + " call-server", S.Leaf(
    "conference-extension", S.String(2, 8, digits=True),
    help="Extension of the conference bridge: INVITE it to start or join your conference, "
         "REFER parties to it to add them (ad-hoc conference)"))


def conference_extension_of(cfg):
    return cfg.get(BASE + " call-server conference-extension")


def _check_conference(s):
    ext = s.conference_ext
    if ext is None:
        return
    if ext in s.by_ext or ext in s.by_user or ext in s.group_by_ext or \
            ext == s.attendant.extension:
        raise ConfigError(BASE + " call-server conference-extension", ext,
                          "already the extension of a station, hunt group or the attendant")
