"""A real SMTP server on loopback for the delivery tests (aiosmtpd).

Every accepted message is written to OUT/<n>.eml exactly as received (the
DATA bytes), and its envelope to OUT/<n>.json. Behaviours for the tests:

  --tempfail-first     answer 451 to the first DATA of each Message-ID
  --reject ADDRESS     answer 550 to RCPT TO of this address (repeatable)
  --stop-after N       reply 250 to the Nth message, refuse new
                       connections, answer 421 to a new message and close
                       its connection, and exit once no connection is open
                       (a relay stopped in the middle of a batch, between
                       two messages)
  --drop-after N       keep the Nth message but exit before replying (the
                       reply is lost: the sender cannot know)
  --delay-ms N         wait N ms after keeping a message, before the 250
  --drop-at STEP:N     close the connection at once, with no reply, when the
                       Nth MAIL, RCPT or DATA command of the run arrives
                       (STEP is mail, rcpt or data): the message cannot have
                       been kept
  --refuse-sender      answer 550 to every MAIL FROM (a relay that does not
                       take the night's sender address)
  --cert C --key K     TLS certificate: with --starttls, STARTTLS is required
                       before MAIL; with --implicit-tls, TLS from the first byte
  --auth USER:PASS     require AUTH (PLAIN/LOGIN) with these credentials

Prints "PORT <n>" on stdout once listening. Run with Debian's python3,
where scripts/setup.sh installs python3-aiosmtpd.
"""

import argparse
import asyncio
import json
import os
import re
import sys

import ssl

from aiosmtpd.smtp import SMTP, AuthResult


class Handler:
    def __init__(self, args):
        self.out = args.out
        self.reject = set(a.lower() for a in args.reject)
        self.tempfail_first = args.tempfail_first
        self.stop_after = args.stop_after
        self.drop_after = args.drop_after
        self.delay = args.delay_ms / 1000.0
        self.seen_ids = set()
        self.drop_at = None
        if args.drop_at:
            step, n = args.drop_at.split(":")
            self.drop_at = (step, int(n))
        self.refuse_sender = args.refuse_sender
        self.commands = {}
        os.makedirs(self.out, exist_ok=True)
        self.count = len([f for f in os.listdir(self.out) if f.endswith(".eml")])
        self.accepted = 0
        self.stopping = False
        self.open = 0

    def drop_now(self, step):
        """Counts a command; whether the connection is to be cut at it."""
        self.commands[step] = self.commands.get(step, 0) + 1
        return self.drop_at == (step, self.commands[step])

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # A relay shutting down says so before a new message starts, and
        # goes only once its connections are closed (see `Connection`): the
        # sender knows the message was not taken. It used to exit on a
        # timer, 0.2 s after the last 250; a sender slowed by a loaded
        # machine had its next message cut by the exit after a command
        # (in doubt), which this behaviour is not about.
        if self.stopping:
            # 421 closes the channel (RFC 5321, 4.2.2), once the reply is out.
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 shutting down"
        if self.refuse_sender:
            return "550 5.7.1 <%s>: sender not allowed" % address
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8")
        m = re.search(rb"^Message-ID:\s*(\S+)", data, re.M | re.I)
        mid = m.group(1).decode() if m else ""
        if self.tempfail_first and mid not in self.seen_ids:
            self.seen_ids.add(mid)
            return "451 4.3.0 try again later"
        self.count += 1
        path = os.path.join(self.out, "%06d" % self.count)
        with open(path + ".eml.tmp", "wb") as f:
            f.write(data)
        os.rename(path + ".eml.tmp", path + ".eml")
        # Written then renamed: a test reading the folder while a message
        # arrives must never see half a file.
        with open(path + ".json.tmp", "w") as f:
            json.dump({"from": envelope.mail_from, "to": envelope.rcpt_tos, "message_id": mid}, f)
        os.rename(path + ".json.tmp", path + ".json")
        self.accepted += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.drop_after and self.accepted >= self.drop_after:
            os._exit(0)
        if self.stop_after and self.accepted >= self.stop_after:
            # Refuse new connections and new messages at once, reply to
            # this one, then go when the last connection closes (or after
            # a while, should a sender hold its connection idle).
            self.stopping = True
            self.listener.close()
            asyncio.get_running_loop().call_later(10, os._exit, 0)
        return "250 2.0.0 OK queued as %s" % mid.strip("<>")


class Connection(SMTP):
    """An SMTP session that counts the open connections, so that a relay
    stopping after a message exits once the last one is closed."""

    def connection_made(self, transport):
        self.event_handler.open += 1
        super().connection_made(transport)

    async def cut_or(self, step, command, arg):
        if self.event_handler.drop_now(step):
            self.transport.abort()
            return
        await command(arg)

    async def smtp_MAIL(self, arg):
        await self.cut_or("mail", super().smtp_MAIL, arg)

    async def smtp_RCPT(self, arg):
        await self.cut_or("rcpt", super().smtp_RCPT, arg)

    async def smtp_DATA(self, arg):
        await self.cut_or("data", super().smtp_DATA, arg)

    def connection_lost(self, exc):
        super().connection_lost(exc)
        h = self.event_handler
        h.open -= 1
        if h.stopping and h.open == 0:
            os._exit(0)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--reject", action="append", default=[])
    p.add_argument("--tempfail-first", action="store_true")
    p.add_argument("--stop-after", type=int, default=0)
    p.add_argument("--drop-after", type=int, default=0)
    p.add_argument("--delay-ms", type=int, default=0)
    p.add_argument("--drop-at")
    p.add_argument("--refuse-sender", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--auth")
    args = p.parse_args()
    handler = Handler(args)
    loop = asyncio.get_running_loop()
    ctx = None
    if args.cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
    kw = dict(decode_data=False, enable_SMTPUTF8=True)
    if args.starttls:
        kw.update(tls_context=ctx, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False)

        kw.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    server = await loop.create_server(
        lambda: Connection(handler, **kw),
        "127.0.0.1",
        args.port,
        reuse_address=True,
        ssl=ctx if args.implicit_tls else None,
    )
    handler.listener = server
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    # Served until killed, or until a stopping relay's last connection
    # closes (`os._exit`). Not `serve_forever`: closing the listener to
    # refuse new connections would end it, and the process with its open
    # connections, reset under a sender between two commands.
    await loop.create_future()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
