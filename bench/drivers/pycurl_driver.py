"""Benchmark driver: as poller.lua, with pycurl's multi socket_action and
selectors.EpollSelector.   usage: python3 pycurl_driver.py URL N C"""
import selectors
import sys

import pycurl

url, total, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sel = selectors.EpollSelector()
timeout = [-1]
nbytes = [0]


def on_socket(what, fd, multi, data):
    if what == pycurl.POLL_REMOVE:
        try:
            sel.unregister(fd)
        except KeyError:
            pass
        return
    ev = (selectors.EVENT_READ if what & pycurl.POLL_IN else 0) | (selectors.EVENT_WRITE if what & pycurl.POLL_OUT else 0)
    try:
        sel.modify(fd, ev)
    except KeyError:
        sel.register(fd, ev)


def on_timer(ms):
    timeout[0] = ms


def on_write(data):
    nbytes[0] += len(data)


m = pycurl.CurlMulti()
m.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
m.setopt(pycurl.M_TIMERFUNCTION, on_timer)
m.setopt(pycurl.M_MAXCONNECTS, conc)
started = done = ok = 0
for _ in range(min(conc, total)):
    c = pycurl.Curl()
    c.setopt(pycurl.URL, url)
    c.setopt(pycurl.WRITEFUNCTION, on_write)
    m.add_handle(c)
    started += 1
m.socket_action(pycurl.SOCKET_TIMEOUT, 0)
while done < total:
    t = timeout[0]
    events = sel.select(None if t < 0 else t / 1000.0)
    if not events:
        m.socket_action(pycurl.SOCKET_TIMEOUT, 0)
    for key, mask in events:
        cmask = (pycurl.CSELECT_IN if mask & selectors.EVENT_READ else 0) | (pycurl.CSELECT_OUT if mask & selectors.EVENT_WRITE else 0)
        m.socket_action(key.fd, cmask)
    while True:
        queued, oks, errs = m.info_read()
        for c in oks:
            done += 1
            ok += 1
            m.remove_handle(c)
            if started < total:
                started += 1
                m.add_handle(c)
        for c, errno, msg in errs:
            done += 1
            m.remove_handle(c)
            if started < total:
                started += 1
                m.add_handle(c)
        if queued == 0:
            break
print("ok=%d bytes=%d" % (ok, nbytes[0]))
sys.exit(0 if ok == total else 1)
