"""The netns harness itself (tests/netns/netns.py), with UDP datagrams from
HQ to the appliance's address: the WAN carries them, a cut drops every one,
the restore carries them again (HQ's route is back), 50 % loss drops about
half, and close() leaves no namespace behind, also after a failure."""
import select
import socket

from tests.netns.netns import APPLIANCE, NFT_TABLE, Topology, inside, sh

N = 400
PORT = 40000
SO_RCVBUFFORCE = 33     # Linux; not named by the socket module


def _through(net, rx, tx):
    """How many of N datagrams HQ -> appliance arrive (a receive deadline:
    0.5 s of silence after the last one sent ends the count)."""
    for i in range(N):
        try:
            tx.sendto(b"%d" % i, (APPLIANCE, PORT))
        except OSError:
            pass    # cut: HQ's route went with its link, unreachable at once
    got = 0
    while select.select([rx], [], [], 0.5)[0]:
        rx.recv(64)
        got += 1
    return got


def test_cut_restore_and_loss_on_the_wan():
    with Topology() as net:
        with inside(net.branch):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # room for all N datagrams at once (root may exceed rmem_max)
            rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
            rx.bind((APPLIANCE, PORT))
        with inside(net.hq):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            assert _through(net, rx, tx) == N
            net.cut()
            assert _through(net, rx, tx) == 0
            net.restore()
            assert _through(net, rx, tx) == N
            net.loss(50)
            got = _through(net, rx, tx)
            # binomial(400, 0.5): mean 200, sd 10; 6 sd either side
            assert 140 <= got <= 260, got
            assert "counter packets" in net.dropped()
            net.loss(0)
            assert NFT_TABLE not in net.run(net.hq, "nft", "list", "tables")
            assert _through(net, rx, tx) == N
        finally:
            rx.close()
            tx.close()
        names = (net.branch, net.hq, net.lan)
    left = sh(["ip", "netns", "list"])
    assert not [n for n in names if n in left], left


def test_namespaces_are_deleted_when_the_test_fails():
    names = ()
    try:
        with Topology() as net:
            names = (net.branch, net.hq, net.lan)
            assert net.branch in sh(["ip", "netns", "list"])
            raise RuntimeError("a failing test")
    except RuntimeError:
        pass
    left = sh(["ip", "netns", "list"])
    assert names and not [n for n in names if n in left], left
