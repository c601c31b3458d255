#!/usr/bin/env python3
"""Open web-console dashboards against one printfarm server (bench/dashboard_bench.sh runs it).

    python3 bench/dashboard_clients.py --base http://127.0.0.1:PORT --session S \
        --clients 20 --duration 120 [--out stats.json]

Each client holds `GET /console/events` (server-sent events) with the session as its
`printfarm_session` cookie, as a browser with the dashboard open does, for --duration s
(or until SIGTERM),
and counts the events and bytes it receives: `printers` (every card, sent first and when the
set of printers changes) and `cards` (only the cards that changed). Prints and writes (--out)
the totals: events per client per second, bytes per event and per client per second, and how
many streams ended early (errors).
"""

import argparse
import asyncio
import json
import signal
import time

import aiohttp


STOP = {"at": float("inf")}


async def client(http, base, session, stats):
    headers = {"Cookie": f"printfarm_session={session}", "Accept": "text/event-stream"}
    try:
        async with http.get(f"{base}/console/events", headers=headers) as res:
            if res.status != 200:
                stats["errors"] += 1
                return
            event = None
            while time.monotonic() < STOP["at"]:
                try:
                    # Short waits, so that a SIGTERM (the bench is done) ends the loop soon.
                    line = await asyncio.wait_for(res.content.readline(), 1.0)
                except asyncio.TimeoutError:
                    continue
                if not line:
                    stats["ended_early"] += 1
                    return
                stats["bytes"] += len(line)
                if line.startswith(b"event: "):
                    event = line[7:].strip()
                elif line == b"\n" and event in (b"printers", b"cards"):
                    stats["events"] += 1
                    stats["full_events" if event == b"printers" else "card_events"] += 1
                    event = None
    except (aiohttp.ClientError, asyncio.TimeoutError):
        stats["errors"] += 1


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True)
    ap.add_argument("--session", required=True)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--duration", type=float, default=120.0)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    stats = {"events": 0, "full_events": 0, "card_events": 0, "bytes": 0, "errors": 0, "ended_early": 0}
    started = time.monotonic()
    STOP["at"] = started + args.duration
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, lambda: STOP.update(at=0))
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(client(http, args.base, args.session, stats) for _ in range(args.clients)))
    held = time.monotonic() - started
    out = {
        "clients": args.clients,
        "held_s": round(held, 1),
        "events_per_client_per_s": round(stats["events"] / max(args.clients, 1) / held, 3),
        "bytes_per_event": round(stats["bytes"] / max(stats["events"], 1)),
        "bytes_per_client_per_s": round(stats["bytes"] / max(args.clients, 1) / held),
        **stats,
    }
    print(json.dumps(out))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
