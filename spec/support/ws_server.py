#!/usr/bin/env python3
"""Scripted WebSocket fixture for the specs (loopback only), on Debian's
python3-websockets.

Usage: ws_server.py [HOST [PID]]. Prints "PORT <n>" on its first line
(or "NO-WEBSOCKETS <why>" when the module is missing), then serves until
process PID (default: its parent) is gone, or SIGTERM.

Paths:
  /echo                 every message back as it came (text or binary),
                        up to 16 MiB
  /fragments/N/SIZE     sends one binary message of N fragments of SIZE
                        bytes each (byte j of fragment i is (i*7 + j) % 256),
                        then echoes
  /ping[/MS]            (after MS milliseconds) sends a ping with payload
                        b"are you there", waits for the pong, sends the text
                        "pong ok", then echoes
  /close/CODE/REASON    closes at once with that code and reason
  /vanish               sends the header of a 100000-byte binary frame and
                        1000 bytes of it, then drops the TCP connection
  anything else         closes with 4404 "no such path"
"""
import asyncio
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifeline  # noqa: E402

try:
    import websockets
except ImportError:
    print("NO-WEBSOCKETS python3-websockets is not installed (Debian package python3-websockets)",
          flush=True)
    sys.exit(0)


def fragment(i, size):
    return bytes((i * 7 + j) % 256 for j in range(size))


async def echo(ws):
    async for msg in ws:
        await ws.send(msg)


async def handler(ws, path=None):
    path = path if path is not None else ws.path
    parts = [p for p in path.split("/") if p]
    try:
        if parts == ["echo"]:
            await echo(ws)
        elif len(parts) == 3 and parts[0] == "fragments":
            n, size = int(parts[1]), int(parts[2])
            await ws.send(fragment(i, size) for i in range(n))
            await echo(ws)
        elif parts and parts[0] == "ping":
            if len(parts) > 1:  # /ping/MS: wait that long first
                await asyncio.sleep(int(parts[1]) / 1000)
            waiter = await ws.ping(b"are you there")
            await asyncio.wait_for(waiter, 10)
            await ws.send("pong ok")
            await echo(ws)
        elif len(parts) == 3 and parts[0] == "close":
            await ws.close(int(parts[1]), parts[2])
        elif parts == ["vanish"]:
            # a binary frame header (FIN, opcode 2, 64-bit length) and part
            # of its payload, then the connection is gone
            head = bytes([0x82, 127]) + struct.pack("!Q", 100000)
            ws.transport.write(head + b"x" * 1000)
            await asyncio.sleep(0.05)
            ws.transport.abort()
        else:
            await ws.close(4404, "no such path")
    except websockets.ConnectionClosed:
        pass


async def main(host, watched):
    server = await websockets.serve(handler, host, 0, max_size=16 * 1024 * 1024,
                                    ping_interval=None, compression=None)
    port = server.sockets[0].getsockname()[1]
    print("PORT %d" % port, flush=True)
    lifeline.watch(watched)
    await asyncio.Future()


if __name__ == "__main__":
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    watched = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    asyncio.run(main(host, watched))
