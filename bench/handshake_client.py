"""bench/handshakes.sh's client: COUNT new TLS connections to 127.0.0.1:PORT, one at a time,
each sending one GET (Connection: close) and reading the whole answer.

Usage: handshake_client.py PORT HOST COUNT full|resumed RETURNING PID[,PID...]

full: no connection offers a session, so each is a full handshake.
resumed: RETURNING (1000) clients, each with its own session, connect in turn; a first pass
that is not counted gives each one its session, then COUNT connections each offer the last
session their client received. Prints one line: "connections=N ok=N resumed=N ticks=T
seconds=S": T is the CPU time (utime + stime, in clock ticks) the processes PID... spent during
the counted connections only, S their wall time.

TCP_NODELAY as browsers set it: without it, the client's last handshake flight and its
request wait on the server's delayed ACK (40 ms per resumed TLS 1.2 connection)."""

import os
import socket
import ssl
import sys
import time


def cpu_ticks(pids):
    """utime + stime of each pid, summed (fields 14 and 15 of /proc/PID/stat)."""
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            # Field 2 is "(comm)" and may hold spaces: split after its closing parenthesis.
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


def main():
    port, host, count, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    returning = int(sys.argv[5])
    pids = [int(p) for p in sys.argv[6].split(",")]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the benchmark's self-signed certificate
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    sessions = {}

    def connect(client):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        offered = sessions.get(client) if client is not None else None
        tls = ctx.wrap_socket(sock, server_hostname=host, session=offered)
        try:
            tls.sendall(request)
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
            if client is not None:
                # TLS 1.3 tickets arrive after the handshake; reading the answer took them in.
                sessions[client] = tls.session
            return answer.startswith(b"HTTP/1.1 200"), tls.session_reused
        finally:
            tls.close()

    if mode == "resumed":
        for client in range(returning):
            connect(client)
    elif mode != "full":
        sys.exit(f"mode must be full or resumed, got {mode!r}")
    ok = resumed = 0
    before, t0 = cpu_ticks(pids), time.monotonic()
    for i in range(count):
        client = i % returning if mode == "resumed" else None
        good, reused = connect(client)
        ok += good
        resumed += reused
    ticks, seconds = cpu_ticks(pids) - before, time.monotonic() - t0
    print(f"connections={count} ok={ok} resumed={resumed} ticks={ticks} seconds={seconds:.3f}")


if __name__ == "__main__":
    main()
