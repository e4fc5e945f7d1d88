"""The certificate commands as the appliance registers them at boot:
firmware/certs.py is imported only when one runs."""


def _run(name):
    def run(app, args):
        from firmware import certs
        return getattr(certs, name)(app, args)
    return run


def _load_args(app, args, partial):
    return ([("<name>", "Name for the certificate")], [("<file>", "PEM certificate file")],
            [("key", "Its private key, PEM")], [("<key-file>", "PEM private key file")],
            )[len(args)] if len(args) < 4 else []


def _delete_args(app, args, partial):
    if args:
        return []
    from firmware import certs
    return [(n, "stored certificate") for n in certs.CertStore(app.state_dir).names()]


def register_commands(reg):
    reg.register("show security certificates", _run("cmd_show"),
                 "Show the stored TLS certificates: subject, issuer, validity")
    reg.register("request security certificate load", _run("cmd_load"),
                 "Store a PEM certificate (its chain, its key): load NAME FILE [key KEY-FILE]",
                 args=_load_args)
    reg.register("request security certificate delete", _run("cmd_delete"),
                 "Delete a stored certificate: delete NAME", args=_delete_args)
