"""The configuration schema: one declaration drives the console, the
`--config` loader, the validators and docs/config.md.

A feature module declares its statements once, at import time:

    from firmware.config import schema as S

    S.register("services convergence-services", S.List(
        "station", "A telephone served by this appliance",
        key=S.Name(), max_entries=256, children=(
            S.Leaf("extension", S.String(2, 8, digits=True), help="Extension number"),
            S.Leaf("password", S.Secret(), help="SIP digest password"),
        )))
    S.on_commit("stations", apply_stations, check=check_stations)

Nodes: Container (a `{ }` block), List (entries keyed by name), Leaf (one
value; a Flag type makes it a bare keyword), LeafList (`did [ 1000 1001 ];`).
Types parse the text typed on the console into a Python value and format it
back: String, Name, Integer, Port, Boolean, Flag, Enum, IPv4Address,
IPv4Prefix, Dscp, Secret (reversible, shown obfuscated), Password (stored
as a salted PBKDF2-HMAC-SHA256 hash; see hash_password) and DigestPassword
(a SIP password stored as its digest HA1; see make_ha1).

Errors a user sees are ConfigError(path, value, reason) and read
`services convergence-services sip port 70000: value out of range 1..65535`.
"""
from firmware.compat import const, hmac_digest, hexlify

MAX_LIST_ENTRIES = const(256)     # default bound of a List
MAX_LEAF_LIST_ITEMS = const(64)   # default bound of a LeafList
MAX_STRING = const(255)           # default longest string value
PASSWORD_ROUNDS = const(1000)     # PBKDF2 iterations (~50 ms on a small board)
SALT_BYTES = const(16)            # password salt: 128 bits from the appliance's random source


class ConfigError(Exception):
    """A statement or a commit was refused.  str() gives the user's message."""

    def __init__(self, path, value=None, reason=""):
        if isinstance(path, (list, tuple)):
            path = " ".join(path)
        self.path = path
        self.value = value
        self.reason = reason
        msg = path
        if value is not None:
            msg = "%s %s" % (msg, value) if msg else str(value)
        super().__init__("%s: %s" % (msg, reason) if msg else reason)


# --- value types ----------------------------------------------------------

class Type:
    """parse(text) -> value or ValueError(reason); format(value) -> text."""
    kind = "string"
    secret = False
    flag = False

    def parse(self, text):
        return text

    def format(self, value):
        return str(value)

    def describe(self):
        return self.kind

    def hint(self):
        """Placeholder shown by `?` in value position."""
        return "<%s>" % self.kind


class String(Type):
    kind = "string"

    def __init__(self, min_len=1, max_len=MAX_STRING, digits=False, charset=None):
        self.min_len = min_len
        self.max_len = max_len
        self.digits = digits
        self.charset = charset

    def parse(self, text):
        if not self.min_len <= len(text) <= self.max_len:
            raise ValueError("length must be %d..%d characters" % (self.min_len, self.max_len))
        if self.digits and not text.isdigit():
            raise ValueError("must be digits only")
        if self.charset is not None:
            for ch in text:
                if ch not in self.charset:
                    raise ValueError("character %r not allowed" % ch)
        for ch in text:
            if ord(ch) < 32 or ch in '"\\;{}':
                raise ValueError("character %r not allowed" % ch)
        return text

    def describe(self):
        s = "digits" if self.digits else "string"
        return "%s, %d..%d characters" % (s, self.min_len, self.max_len)


_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


class Name(String):
    """A list key or identifier: letters, digits, - _ . ; starts with a letter or digit."""
    kind = "name"

    def __init__(self, max_len=32):
        String.__init__(self, 1, max_len, charset=_NAME_CHARS)

    def parse(self, text):
        String.parse(self, text)
        if text[0] in "-_.":
            raise ValueError("must start with a letter or digit")
        return text

    def describe(self):
        return "name, 1..%d of letters, digits, - _ ." % self.max_len


class Hostname(String):
    kind = "hostname"
    _CH = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."

    def __init__(self, max_len=63):
        String.__init__(self, 1, max_len, charset=self._CH)

    def parse(self, text):
        String.parse(self, text)
        if text[0] in "-." or text[-1] in "-.":
            raise ValueError("must start and end with a letter or digit")
        return text

    def describe(self):
        return "host name, 1..%d of letters, digits, - ." % self.max_len


class Integer(Type):
    kind = "integer"

    def __init__(self, lo, hi, unit=""):
        self.lo = lo
        self.hi = hi
        self.unit = unit

    def parse(self, text):
        t = text[1:] if text[:1] == "-" else text
        if not t.isdigit():
            raise ValueError("not a number")
        v = int(text)
        if not self.lo <= v <= self.hi:
            raise ValueError("value out of range %d..%d" % (self.lo, self.hi))
        return v

    def describe(self):
        return "integer %d..%d%s" % (self.lo, self.hi, " " + self.unit if self.unit else "")

    def hint(self):
        return "<%d..%d>" % (self.lo, self.hi)


class Port(Integer):
    kind = "port"

    def __init__(self):
        Integer.__init__(self, 1, 65535)

    def describe(self):
        return "port 1..65535"


class Boolean(Type):
    kind = "boolean"

    def parse(self, text):
        if text in ("true", "yes", "on", "enable"):
            return True
        if text in ("false", "no", "off", "disable"):
            return False
        raise ValueError("expected true or false")

    def format(self, value):
        return "true" if value else "false"

    def describe(self):
        return "boolean (true, false)"


class Flag(Type):
    """A bare keyword: present or absent (`set system console no-paging`)."""
    kind = "flag"
    flag = True

    def parse(self, text):
        return True

    def describe(self):
        return "flag (present or absent)"


class Enum(Type):
    kind = "enum"

    def __init__(self, choices):
        self.choices = tuple(choices)

    def parse(self, text):
        if text in self.choices:
            return text
        m = [c for c in self.choices if c.startswith(text)]
        if len(m) == 1:
            return m[0]
        raise ValueError("expected one of: %s" % ", ".join(self.choices))

    def describe(self):
        return "one of: " + ", ".join(self.choices)

    def hint(self):
        return "<" + "|".join(self.choices) + ">"


def parse_ipv4(text):
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address")
    for p in parts:
        if not p.isdigit() or len(p) > 3 or int(p) > 255:
            raise ValueError("not an IPv4 address")
    return ".".join(str(int(p)) for p in parts)


class IPv4Address(Type):
    kind = "ip-address"

    def parse(self, text):
        return parse_ipv4(text)

    def describe(self):
        return "IPv4 address (a.b.c.d)"


class IPv4Prefix(Type):
    kind = "ip-prefix"

    def parse(self, text):
        addr, sep, plen = text.partition("/")
        if not sep:
            plen = "32"
        a = parse_ipv4(addr)
        if not plen.isdigit() or int(plen) > 32:
            raise ValueError("prefix length must be 0..32")
        n = int(plen)
        v = 0
        for p in a.split("."):
            v = (v << 8) | int(p)
        if n < 32 and v & ((1 << (32 - n)) - 1):
            raise ValueError("host bits set beyond /%d" % n)
        return "%s/%d" % (a, n)

    def describe(self):
        return "IPv4 prefix (a.b.c.d/len)"


DSCP_NAMES = (("be", 0), ("cs1", 8), ("af11", 10), ("af12", 12), ("af13", 14),
              ("cs2", 16), ("af21", 18), ("af22", 20), ("af23", 22), ("cs3", 24),
              ("af31", 26), ("af32", 28), ("af33", 30), ("cs4", 32), ("af41", 34),
              ("af42", 36), ("af43", 38), ("cs5", 40), ("ef", 46), ("cs6", 48),
              ("cs7", 56))


class Dscp(Type):
    """DSCP code point: 0..63, a 6-bit string (101110) or a name (ef, af41, cs3)."""
    kind = "dscp"

    def parse(self, text):
        for name, v in DSCP_NAMES:
            if text == name:
                return v
        if len(text) == 6 and not text.strip("01"):
            return int(text, 2)
        if text.isdigit() and int(text) <= 63:
            return int(text)
        raise ValueError("not a DSCP value: 0..63, 6 bits, or a name (ef, af11..af43, cs0..cs7, be)")

    def format(self, value):
        for name, v in DSCP_NAMES:
            if v == value:
                return name
        return str(value)

    def describe(self):
        return "DSCP 0..63, 6-bit string or name (be, ef, af11..af43, cs1..cs7)"

    def hint(self):
        return "<0..63|ef|afNN|csN>"


# Reversible secrets (SIP digest passwords need the plain text) are kept
# obfuscated as `$9$` + hex of (text XOR a fixed keystream): not encryption,
# only protection against shoulder surfing, like Junos' $9$.
_OBF_KEY = b"branch-voice-obfuscation-key-v1."


def _obfuscate(text):
    b = text.encode()
    out = bytes(b[i] ^ _OBF_KEY[i % len(_OBF_KEY)] for i in range(len(b)))
    return "$9$" + hexlify(out)


def _deobfuscate(text):
    import binascii
    b = binascii.unhexlify(text[3:])
    return bytes(b[i] ^ _OBF_KEY[i % len(_OBF_KEY)] for i in range(len(b))).decode()


class Secret(Type):
    """A reversible secret; `get()` returns the plain text, `show` the $9$ form."""
    kind = "secret"
    secret = True

    def __init__(self, max_len=64):
        self.max_len = max_len

    def parse(self, text):
        if text.startswith("$9$"):
            try:
                plain = _deobfuscate(text)
            except Exception:
                raise ValueError("malformed $9$ secret")
        else:
            plain = text
        if not 1 <= len(plain) <= self.max_len:
            raise ValueError("length must be 1..%d characters" % self.max_len)
        return plain

    def format(self, value):
        return _obfuscate(value)

    def describe(self):
        return "secret, 1..%d characters, shown as $9$..." % self.max_len


# --- login password hashes ----------------------------------------------------

def pbkdf2_sha256(password, salt, rounds):
    """PBKDF2-HMAC-SHA256 (RFC 8018), one 32-byte block; same result as
    hashlib.pbkdf2_hmac('sha256', ...), which MicroPython lacks."""
    u = hmac_digest("sha256", password, salt + b"\x00\x00\x00\x01")
    acc = bytearray(u)
    for _ in range(rounds - 1):
        u = hmac_digest("sha256", password, u)
        for i in range(32):
            acc[i] ^= u[i]
    return bytes(acc)


def hash_password(plain, salt_hex, rounds=PASSWORD_ROUNDS):
    """`$pbkdf2-sha256$ROUNDS$SALT$HASH`, salt and hash in lower-case hex."""
    dk = pbkdf2_sha256(plain.encode(), salt_hex.encode(), rounds)
    return "$pbkdf2-sha256$%d$%s$%s" % (rounds, salt_hex, hexlify(dk))


def parse_hash(text):
    parts = text.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "pbkdf2-sha256":
        raise ValueError("expected $pbkdf2-sha256$ROUNDS$SALT$HASH")
    if not parts[2].isdigit() or not 1 <= int(parts[2]) <= 100000:
        raise ValueError("rounds must be 1..100000")
    if not parts[3] or len(parts[4]) != 64:
        raise ValueError("malformed hash")
    for ch in parts[3] + parts[4]:
        if ch not in "0123456789abcdef":
            raise ValueError("malformed hash")
    return int(parts[2]), parts[3], parts[4]


def check_password(plain, hashed):
    try:
        rounds, salt, _ = parse_hash(hashed)
    except ValueError:
        return False
    expect = hash_password(plain, salt, rounds)
    # compare without an early exit
    diff = len(expect) ^ len(hashed)
    for a, b in zip(expect, hashed):
        diff |= ord(a) ^ ord(b)
    return diff == 0


class PasswordHash(Type):
    """An already hashed login password (`encrypted-password "$pbkdf2-sha256$..."`)."""
    kind = "password-hash"
    secret = True

    def parse(self, text):
        parse_hash(text)
        return text

    def describe(self):
        return "password hash $pbkdf2-sha256$ROUNDS$SALT$HASH"


class PlainPassword(Type):
    """A login password typed in clear; the tree stores only its hash (in the
    sibling leaf named by `store_as`)."""
    kind = "password"
    secret = True
    prompt = True   # the console asks for it (twice, without echo) when omitted

    def __init__(self, store_as, min_len=6, max_len=64):
        self.store_as = store_as
        self.min_len = min_len
        self.max_len = max_len

    def parse(self, text):
        if not self.min_len <= len(text) <= self.max_len:
            raise ValueError("password must be %d..%d characters" % (self.min_len, self.max_len))
        return text

    def describe(self):
        return "password, %d..%d characters; stored as %s" % (
            self.min_len, self.max_len, self.store_as)

    def store(self, plain, app, tree, path):
        """The value kept in the `store_as` leaf for `plain` (ValueError: refused)."""
        return hash_password(plain, app.rng.token(SALT_BYTES))


# --- SIP digest credentials ----------------------------------------------------------
# A station password is kept only as its digest HA1 (RFC 7616 / RFC 8760), for MD5 and
# SHA-256: "$sip-ha1$USER$REALM$MD5HEX$SHA256HEX".  HA1 depends on the user and realm, so
# the value names both and the commit check refuses one whose user or realm no longer
# match the station (the password must then be typed again).

def make_ha1(user, realm, plain):
    import hashlib
    text = ("%s:%s:%s" % (user, realm, plain)).encode()
    return "$sip-ha1$%s$%s$%s$%s" % (user, realm, hexlify(hashlib.md5(text).digest()),
                                       hexlify(hashlib.sha256(text).digest()))


def parse_ha1(text):
    """-> (user, realm, md5hex, sha256hex); ValueError when malformed."""
    if not text.startswith("$sip-ha1$"):
        raise ValueError("expected $sip-ha1$USER$REALM$MD5$SHA256")
    parts = text[9:].split("$")
    if len(parts) < 4:
        raise ValueError("expected $sip-ha1$USER$REALM$MD5$SHA256")
    md5, sha = parts[-2], parts[-1]
    realm = parts[-3]
    user = "$".join(parts[:-3])
    if not user or not realm or len(md5) != 32 or len(sha) != 64:
        raise ValueError("malformed HA1")
    for ch in md5 + sha:
        if ch not in "0123456789abcdef":
            raise ValueError("malformed HA1")
    return user, realm, md5, sha


class DigestHA1(Type):
    """A stored digest credential (`password-ha1 "$sip-ha1$..."`)."""
    kind = "digest-ha1"
    secret = True

    def parse(self, text):
        parse_ha1(text)
        return text

    def describe(self):
        return "digest credential $sip-ha1$USER$REALM$MD5HEX$SHA256HEX"


class DigestPassword(PlainPassword):
    """A SIP password typed in clear.  Kept in `store_as`: a reversible `$9$`
    Secret (the HA1 is computed for whatever realm asks, so a new `sip
    domain` or a peer's realm needs no new password), or, with a DigestHA1
    leaf as store_as, only its HA1 for user_of(tree, path) and
    realm_of(app, tree).  A new password replaces a stored HA1 (`replaces`).
    Policy: at least min_len characters and not equal to the user name."""
    kind = "sip-password"

    def __init__(self, store_as, user_of, realm_of, min_len=7, max_len=64, replaces=None):
        PlainPassword.__init__(self, store_as, min_len, max_len)
        self.user_of = user_of
        self.realm_of = realm_of
        self.replaces = replaces

    def parse(self, text):
        if not self.min_len <= len(text) <= self.max_len:
            raise ValueError("password must be %d..%d characters (longer than %d)" % (
                self.min_len, self.max_len, self.min_len - 1))
        return text

    def store(self, plain, app, tree, path):
        user = self.user_of(tree, path)
        if user is None:
            raise ValueError("set the extension (or user-id) before the password")
        if plain == user:
            raise ValueError("password must differ from the user ID")
        if self.replaces:
            from firmware.config.tree import get_subtree
            sub = get_subtree(tree, path[:-1])
            if isinstance(sub, dict) and self.replaces in sub:
                del sub[self.replaces]
        if self.store_as.endswith("ha1"):
            return make_ha1(user, self.realm_of(app, tree), plain)
        return plain        # a Secret leaf keeps the text; it is shown and stored as $9$


# --- nodes ---------------------------------------------------------------------

class Node:
    kind = "node"

    def __init__(self, name, help_text, validate=None):
        self.name = name
        self.help = help_text
        self.validate = validate   # validate(value_or_subtree, view, path) -> error or None


class Leaf(Node):
    kind = "leaf"

    def __init__(self, name, type_, help="", default=None, validate=None, mandatory=False):
        Node.__init__(self, name, help, validate)
        self.type = type_
        self.default = default
        self.mandatory = mandatory


class LeafList(Node):
    kind = "leaf-list"

    def __init__(self, name, type_, help="", max_items=MAX_LEAF_LIST_ITEMS, validate=None):
        Node.__init__(self, name, help, validate)
        self.type = type_
        self.max_items = max_items
        self.default = None


class Container(Node):
    kind = "container"

    def __init__(self, name, help="", children=(), validate=None):
        Node.__init__(self, name, help, validate)
        self.children = []
        self.by_name = {}
        for c in children:
            self.add(c)

    def add(self, node):
        old = self.by_name.get(node.name)
        if old is node:
            return node
        if old is not None:
            if old.kind == "container" and node.kind == "container":
                for c in node.children:   # merge two declarations of one block
                    old.add(c)
                return old
            raise ValueError("statement %s declared twice" % node.name)
        self.children.append(node)
        self.by_name[node.name] = node
        return node

    def child(self, name):
        return self.by_name.get(name)


class List(Container):
    kind = "list"

    def __init__(self, name, help="", key=None, children=(), max_entries=MAX_LIST_ENTRIES,
                 validate=None, key_help="Name"):
        Container.__init__(self, name, help, children, validate)
        self.key = key or Name()
        self.key_help = key_help
        self.max_entries = max_entries


# --- the global schema and commit hooks -----------------------------------------

ROOT = Container("", "the configuration")
HOOKS = []   # (name, apply(app, old, new), check(app, old, new) or None), in registration order


def register(path, node):
    """Declare `node` under the container at `path` (space-separated, created as
    needed): register("services convergence-services", Leaf(...))."""
    parent = ROOT
    for word in path.split():
        c = parent.child(word)
        if c is None:
            c = parent.add(Container(word, ""))
        parent = c
    return parent.add(node)


def describe_block(path, help_text):
    """Give an intermediate container its help text."""
    node = lookup(path)
    node.help = help_text
    return node


def lookup(path):
    node = ROOT
    for word in path.split():
        node = node.child(word)
        if node is None:
            raise KeyError(path)
    return node


def on_commit(name, apply, check=None):
    """Run apply(app, old, new) at every commit (and at boot with old = the
    empty configuration), after check(app, old, new) of every hook passed.
    Either may raise ConfigError to refuse the commit; it then fails as a
    whole and the hooks that already ran are called again with (new, old)."""
    for i, h in enumerate(HOOKS):
        if h[0] == name:
            HOOKS[i] = (name, apply, check)
            return
    HOOKS.append((name, apply, check))
