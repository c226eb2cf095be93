"""Real IMAP servers for tests, each a subprocess on a free loopback port: pymap (maildir
backend, always there: a test dependency) and Dovecot (Debian's dovecot-imapd, when installed).

The helpers talk to the server with the standard library's imaplib from a thread, so the
oracle shares no code with the aioimaplib client under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any, TypeVar

from mailrelay.config import ImapConfig

from .mailtools import free_port

HOST = "127.0.0.1"
USER = "relay"
PASSWORD = "secret-pass"
T = TypeVar("T")


class ImapServer:
    """A server process plus imaplib helpers; folder names are given with "/" as in relay.toml."""

    kind = "imap"
    delimiter = "/"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.host = HOST
        self.port = port or free_port()
        self.username = USER
        self.password = PASSWORD
        self.tls = False  # implicit TLS on `port`
        self.starttls = False
        self.cert: tuple[Path, Path] | None = None
        self.helper_port = self.port  # plain IMAP (or STARTTLS) for the imaplib helpers
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # process control
    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start on the same port as before and wait until it greets."""
        if self._process is not None:
            raise RuntimeError(f"{self.kind} is already running")
        self._log = open(self.root / f"{self.kind}.out", "ab")  # noqa: SIM115 - closed in _reap
        self._process = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self._process.poll() is not None:
                self._reap()
                raise RuntimeError(f"{self.kind} exited at start; see {self.log_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.helper_port), timeout=1) as sock:
                    if sock.recv(4).startswith(b"* "):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.kind} did not start: {self.log_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM to the process group)."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """A crash: SIGKILL to the process group, open connections die without a BYE."""
        self._signal(signal.SIGKILL)

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP): connections stay open, nothing answers."""
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, signum: int) -> None:
        process = self._process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        # children of a killed master (Dovecot) may linger for a moment
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self._reap()

    def _reap(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def running(self) -> bool:
        return self._process is not None

    def log_text(self) -> str:
        path = self.root / f"{self.kind}.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def reset_uidvalidity(self) -> None:
        """Stop, make the server forget the UIDs of INBOX (a new UIDVALIDITY), start again."""
        raise NotImplementedError

    # configuration for the watcher
    def imap_config(self, **changes: Any) -> ImapConfig:
        config = ImapConfig(
            host=self.host, port=self.port, tls=self.tls, starttls=self.starttls,
            username=self.username, password=self.password, oauth2_token_command=None,
            folder="INBOX", authserv_id="", processed_folder="mailrelay/processed",
            rejected_folder="mailrelay/rejected", idle_timeout=timedelta(minutes=5),
            poll_interval=timedelta(seconds=60))
        return replace(config, **changes)

    def toml(self) -> str:
        """An [imap] table for relay.toml pointing at this server."""
        return textwrap.dedent(f"""
            [imap]
            host = "{self.host}"
            port = {self.port}
            tls = {str(self.tls).lower()}
            starttls = {str(self.starttls).lower()}
            username = "{self.username}"
            password = "{self.password}"
            """)

    # imaplib helpers (blocking ones run in a thread)
    def name(self, folder: str) -> str:
        return folder if folder == "INBOX" else folder.replace("/", self.delimiter)

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4(self.host, self.helper_port, timeout=10)
        try:
            if self.starttls:
                client.starttls(ssl.create_default_context(
                    cafile=str(self.cert[0]) if self.cert else None))
            client.login(self.username, self.password)
            yield client
        finally:
            try:
                client.logout()
            except (imaplib.IMAP4.error, OSError):
                with contextlib.suppress(OSError):
                    client.shutdown()

    async def _run(self, fn: Callable[[imaplib.IMAP4], T]) -> T:
        def job() -> T:
            with self.session() as client:
                return fn(client)
        return await asyncio.to_thread(job)

    async def append(self, raw: bytes, folder: str = "INBOX", flags: str = "") -> int:
        """Append a message; returns its UID (from APPENDUID, RFC 4315)."""
        def fn(client: imaplib.IMAP4) -> int:
            typ, data = client.append(self.name(folder), f"({flags})" if flags else None,
                                      None, raw)
            assert typ == "OK", data
            match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(match.group(1)) if match else 0
        return await self._run(fn)

    async def uids(self, folder: str = "INBOX") -> list[int]:
        def fn(client: imaplib.IMAP4) -> list[int]:
            typ, _ = client.select(self.name(folder), readonly=True)
            if typ != "OK":
                return []
            _, data = client.uid("SEARCH", "ALL")
            return [int(n) for n in (data[0] or b"").split()]
        return await self._run(fn)

    async def messages(self, folder: str = "INBOX") -> list[bytes]:
        def fn(client: imaplib.IMAP4) -> list[bytes]:
            typ, _ = client.select(self.name(folder), readonly=True)
            if typ != "OK":
                return []
            _, data = client.uid("SEARCH", "ALL")
            found: list[bytes] = []
            for uid in (data[0] or b"").split():
                _, parts = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
                found.extend(p[1] for p in parts if isinstance(p, tuple))
            return found
        return await self._run(fn)

    async def flags(self, uid: int, folder: str = "INBOX") -> set[str]:
        def fn(client: imaplib.IMAP4) -> set[str]:
            client.select(self.name(folder), readonly=True)
            _, data = client.uid("FETCH", str(uid), "(FLAGS)")
            text = b" ".join(d if isinstance(d, bytes) else d[0] for d in data if d)
            match = re.search(rb"FLAGS \(([^)]*)\)", text)
            return set(match.group(1).decode().split()) if match else set()
        return await self._run(fn)

    async def folder_exists(self, folder: str) -> bool:
        def fn(client: imaplib.IMAP4) -> bool:
            _, data = client.list('""', self.name(folder))
            return any(d for d in data if d)
        return await self._run(fn)

    async def counts(self) -> dict[str, int]:
        """Messages per selectable folder (names as given in relay.toml: "/" separated)."""
        def fn(client: imaplib.IMAP4) -> dict[str, int]:
            _, data = client.list('""', "*")
            result = {}
            for line in data:
                if not isinstance(line, bytes) or b"\\Noselect" in line:
                    continue
                name = line.rsplit(b" ", 1)[1].strip(b'"').decode()
                _, status = client.status(name, "(MESSAGES)")
                match = re.search(rb"MESSAGES (\d+)", status[0] or b"")
                result[name.replace(self.delimiter, "/")] = int(match.group(1)) if match else 0
            return result
        return await self._run(fn)

    async def delete_all(self, folder: str = "INBOX") -> None:
        """What a person tidying up does: flag everything \\Deleted and expunge."""
        def fn(client: imaplib.IMAP4) -> None:
            client.select(self.name(folder))
            client.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
            client.expunge()
        await self._run(fn)

    async def uidvalidity(self, folder: str = "INBOX") -> int:
        def fn(client: imaplib.IMAP4) -> int:
            _, data = client.status(self.name(folder), "(UIDVALIDITY)")
            match = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            assert match, data
            return int(match.group(1))
        return await self._run(fn)


class PymapServer(ImapServer):
    """pymap's maildir backend (data survives restarts; the dict backend would lose it)."""

    kind = "pymap"
    delimiter = "/"

    def __init__(self, root: Path, port: int | None = None) -> None:
        super().__init__(root, port)
        self.base = root / "pymap"
        self.base.mkdir(parents=True, exist_ok=True)
        # pymap-etc-passwd / -shadow: name:password:uid:gid:comment:home:shell (passwd(5))
        (self.base / "pymap-etc-passwd").write_text(f"{USER}:x::::{USER}:\n")
        (self.base / "pymap-etc-shadow").write_text(f"{USER}:{_pymap_hash(PASSWORD)}:::::::\n")

    @property
    def maildir(self) -> Path:
        return self.base / USER

    def command(self) -> list[str]:
        script = Path(sys.executable).with_name("pymap")
        program = [str(script)] if script.exists() else [
            sys.executable, "-c", "import sys; from pymap.main import main; sys.exit(main())"]
        return [*program, "--host", self.host, "--port", str(self.port), "--no-tls",
                "maildir", str(self.base)]

    def reset_uidvalidity(self) -> None:
        self.stop()
        # pymap keeps INBOX's UIDs in Dovecot's format; without the file it starts over with a
        # new UIDVALIDITY and numbers the messages from 1 again.
        (self.maildir / "dovecot-uidlist").unlink()
        self.start()


def _pymap_hash(password: str) -> str:
    """The password hash pymap's own config checks, with few rounds (tests log in a lot)."""
    from pymap.config import IMAPConfig

    context: Any = IMAPConfig._get_hash_context(None)
    with contextlib.suppress(Exception):
        context = context.copy(rounds=1000)
    return str(context.hash(password))


def dovecot_version() -> tuple[int, int]:
    out = subprocess.run(["dovecot", "--version"], capture_output=True, text=True,
                         check=True).stdout
    major, minor = re.match(r"(\d+)\.(\d+)", out).groups()  # type: ignore[union-attr]
    return int(major), int(minor)


class DovecotServer(ImapServer):
    """`dovecot -F` with a throw-away config: passwd-file user, Maildir, loopback only.

    `capabilities` replaces the post-login CAPABILITY list (imap_capability) to play an older
    server without IDLE, MOVE or UIDPLUS; `security` is "no", "starttls" or "implicit" TLS.
    """

    kind = "dovecot"
    delimiter = "."  # Maildir++

    def __init__(self, root: Path, port: int | None = None, *, capabilities: str | None = None,
                 security: str = "no", cert: tuple[Path, Path] | None = None,
                 helper_port: int | None = None) -> None:
        super().__init__(root, port)
        self.capabilities = capabilities
        self.security = security
        self.cert = cert
        self.tls = security == "implicit"
        self.starttls = security == "starttls"
        # imaplib helpers need plain IMAP: with implicit TLS a second, plain listener serves them
        self.helper_port = helper_port or (free_port() if self.tls else self.port)
        # A short directory: Dovecot's unix sockets live in base_dir (108-byte path limit), and
        # as root the mail processes run as nobody, who cannot enter pytest's 0700 tmp dirs.
        self.home = Path(tempfile.mkdtemp(prefix="mrdv-"))
        self.home.chmod(0o755)
        self.mail = self.home / "mail"
        self.mail.mkdir()
        if os.geteuid() == 0:
            self.mail_user, self.mail_group = "nobody", grp.getgrgid(
                pwd.getpwnam("nobody").pw_gid).gr_name
            shutil.chown(self.mail, self.mail_user, self.mail_group)
            self.internal_user, self.login_user = "dovecot", "dovenull"
            self.internal_group = grp.getgrgid(pwd.getpwnam("dovecot").pw_gid).gr_name
        else:
            me = pwd.getpwuid(os.getuid())
            self.mail_user = self.internal_user = self.login_user = me.pw_name
            self.mail_group = self.internal_group = grp.getgrgid(os.getgid()).gr_name
        (self.home / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
        (self.home / "dovecot.conf").write_text(self.config_text())

    @property
    def maildir(self) -> Path:
        return self.mail / USER

    def command(self) -> list[str]:
        return ["/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else "dovecot",
                "-F", "-c", str(self.home / "dovecot.conf")]

    def log_text(self) -> str:
        path = self.home / "dovecot.log"
        own = path.read_text(errors="replace") if path.exists() else ""
        return super().log_text() + own

    def config_text(self) -> str:
        home = self.home
        listeners = [("imap", self.helper_port, False)]
        if self.tls:
            listeners.append(("imaps", self.port, True))
        # Addresses come from the global `listen`; no chroot, so it also runs without root.
        blocks = "\n".join(
            f"  inet_listener {name} {{\n    port = {port}\n"
            + ("    ssl = yes\n" if tls else "") + "  }"
            for name, port, tls in listeners)
        if not self.tls:
            blocks += "\n  inet_listener imaps {\n    port = 0\n  }"
        blocks += "\n  chroot ="
        uid = pwd.getpwnam(self.mail_user).pw_uid
        common = f"""
            protocols = imap
            listen = {HOST}
            base_dir = {home}/run
            state_dir = {home}/state
            log_path = {home}/dovecot.log
            info_log_path = {home}/dovecot.log
            auth_mechanisms = plain login xoauth2
            auth_failure_delay = 0
            login_trusted_networks = 127.0.0.0/8
            default_internal_user = {self.internal_user}
            default_internal_group = {self.internal_group}
            default_login_user = {self.login_user}
            mail_uid = {self.mail_user}
            mail_gid = {self.mail_group}
            first_valid_uid = {min(uid, 500)}
            first_valid_gid = 0
            mailbox_idle_check_interval = 1 secs
            """
        if dovecot_version() >= (2, 4):
            # Untested here (Debian 12 ships 2.3): the 2.4 names of the same settings.
            text = "dovecot_config_version = 2.4.0\ndovecot_storage_version = 2.4.0\n"
            text += textwrap.dedent(common) + textwrap.dedent(f"""
                auth_allow_cleartext = {"no" if self.starttls else "yes"}
                mail_driver = maildir
                mail_path = {self.mail}/%{{user}}
                passdb passwd-file {{
                  passwd_file_path = {home}/passwd
                }}
                userdb passwd-file {{
                  passwd_file_path = {home}/passwd
                }}
                """)
            if self.security != "no" and self.cert:
                text += (f"ssl = yes\nssl_server_cert_file = {self.cert[0]}\n"
                         f"ssl_server_key_file = {self.cert[1]}\n")
            else:
                text += "ssl = no\n"
        else:
            text = textwrap.dedent(common) + textwrap.dedent(f"""
                disable_plaintext_auth = {"yes" if self.starttls else "no"}
                mail_location = maildir:{self.mail}/%u
                passdb {{
                  driver = passwd-file
                  args = {home}/passwd
                }}
                userdb {{
                  driver = passwd-file
                  args = {home}/passwd
                }}
                """)
            if self.security != "no" and self.cert:
                text += f"ssl = yes\nssl_cert = <{self.cert[0]}\nssl_key = <{self.cert[1]}\n"
            else:
                text += "ssl = no\n"
        if self.capabilities is not None:
            text += f"imap_capability = {self.capabilities}\n"
        text += f"service imap-login {{\n{blocks}\n}}\nservice anvil {{\n  chroot =\n}}\n"
        return text

    def reset_uidvalidity(self) -> None:
        self.kill()  # a clean stop takes Dovecot a second; Maildir is safe either way
        # Dovecot keeps UIDs in dovecot-uidlist and the indexes; the next UIDVALIDITY comes
        # from dovecot-uidvalidity in the root, which is kept so it cannot repeat.
        for path in self.maildir.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith(("dovecot.index",
                                                                         "dovecot.list.index")):
                path.unlink()
        self.start()

    def remove(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def running(server: ImapServer) -> Iterator[ImapServer]:
    """Start `server`, and stop it (and remove its files) however the test ends."""
    try:
        server.start()
        yield server
    finally:
        server.kill()
        if isinstance(server, DovecotServer):
            server.remove()
