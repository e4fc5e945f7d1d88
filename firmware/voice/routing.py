"""Outside-number routing over the configured trunks: one rule for the
analog gateway and the local call server.

    routes = trunk_routes(trunks, "9155512", emergency=("911", "112"))
        -> [(trunk, digits on the line), ...] in the order to try them

- An emergency number is dialled exactly as dialled, on every trunk in
  priority order (a busy line passes it to the next): no prefix is needed
  and none is stripped or replaced.
- Anything else goes to the trunks whose prefix it starts with (and goes on
  past), longest prefix first, then by priority (lower first), then in
  configuration order; the digits on the line are replace-prefix + the
  rest.  The caller tries them in turn and overflows past a busy or
  out-of-service trunk.
"""


def trunk_routes(trunks, number, emergency=()):
    if not number:
        return []
    keyed = []      # (sort key, trunk, digits); the index keeps configuration order
    i = 0           # (MicroPython's sort is not stable)
    for t in trunks:
        if number in emergency:
            keyed.append(((t.priority, i), t, number))
        else:
            p = t.prefix
            if p and number.startswith(p) and len(number) > len(p):
                keyed.append(((-len(p), t.priority, i), t, t.replace_prefix + number[len(p):]))
        i += 1
    keyed.sort(key=lambda k: k[0])
    return [(k[1], k[2]) for k in keyed]
