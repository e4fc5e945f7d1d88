"""Dialog usages, sans-I/O (RFC 3261 §12-§14, RFC 3515, RFC 3891, RFC 6665).

The layer above the transactions (sip/transaction.py) and dialogs
(sip/dialog.py): INVITE sessions, the registration client, REFER, and
generic subscriptions.  Like the rest of sip/ they open no socket, read no
clock and know no scheduler: `now` (ms) goes into every call that may send,
and out come the transaction layer's messages (layer.take_outgoing()),
timers on an injected sip.timers.TimerTable, and the owners' callbacks.

    agent.py         Agent: dialogs, sessions and subscriptions of one user
                     agent; in-dialog requests to their usage; helpers
    invite.py        InviteSession (UAC and UAS, re-INVITE, delayed offer,
                     Replaces target, forked early dialogs)
    registration.py  Registration (refresh with jitter, back-off, digest)
    refer.py         ReferClient / ReferSubscription (implicit subscription,
                     sipfrag NOTIFY)
    subscription.py  SubscribeClient / Notifier (RFC 6665)

The I/O shell (firmware/sipstack/dialogs.py) builds one Agent per appliance,
feeds it the requests the router gives the dialog module, sends what it
queues (agent.wake) and runs its timers.
"""
