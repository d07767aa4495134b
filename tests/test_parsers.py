"""helixdiag.observe.parsers on recorded host output (tests/recordings/, each with a .source.md).

Recordings named *_SYNTHETIC.txt were built by hand from the documented format because no real
output was found; every test that uses one says so. Everything else is real output, trimmed.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag.observe.parsers import (
    LsofEntry,
    ParseError,
    parse_lsof_fields,
    parse_lsof_table,
    parse_otool_L,
    parse_ps_lines,
    parse_qemu_cmdline,
    parse_socat_cmdline,
)

pytestmark = pytest.mark.timeout(30)

RECORDINGS = Path(__file__).resolve().parent / "recordings"
# The working directory of the recorded Linux socat processes (readlink /proc/PID/cwd at the time).
LINUX_SOCAT_CWD = "/tmp/hdrec/Group Containers"
UTM_GROUP = "/Users/luke/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM"


def recording(name: str) -> str:
    return (RECORDINGS / name).read_text(encoding="utf-8")


def shell_words(command: str) -> list[str]:
    """What a POSIX shell hands the program: line continuations joined, cut at `&`."""
    words = shlex.split(command.replace("\\\n", " "))
    return words[: words.index("&")] if "&" in words else words


def test_every_recording_has_a_source_note():
    texts = [p for p in RECORDINGS.rglob("*.txt")]
    assert len(texts) >= 25
    for path in texts:
        note = path.with_name(path.stem + ".source.md")
        assert note.is_file(), f"{path} has no {note.name}"
        if "SYNTHETIC" in path.name:
            assert "SYNTHETIC" in note.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- lsof table, macOS


def test_lsof_table_macos_listen_ipv4():
    entries = parse_lsof_table(recording("macos/lsof_i4tcp_listen_hukar.txt"))
    assert [(e.command, e.pid, e.local_address, e.local_port) for e in entries] == [
        ("figma_age", 1080, "127.0.0.1", 44950),
        ("figma_age", 1080, "127.0.0.1", 44960),
        ("adb", 33939, "127.0.0.1", 5037),
        ("mongod", 50386, "127.0.0.1", 27017),
    ]
    first = entries[0]
    assert first.command == "figma_age"  # macOS truncates COMMAND to 9 characters
    assert (first.user, first.fd, first.type, first.protocol) == ("kar", "3u", "IPv4", "TCP")
    assert first.device == "0xe6b20b0a9a4d77a1"
    assert first.state == first.tcp_state == "LISTEN" and first.is_listening
    assert first.remote is None and first.unix_path is None


def test_lsof_table_macos_service_names_without_P():
    # `lsof -i :5432` without -P/-n: the port is a service name, the host a name.
    entries = parse_lsof_table(recording("macos/lsof_i_port_5432_halyph.txt"))
    assert [(e.pid, e.fd, e.type, e.name) for e in entries] == [
        (29756, "7u", "IPv6", "localhost:postgresql"),
        (29756, "8u", "IPv4", "localhost:postgresql"),
    ]
    assert all(e.local_address == "localhost" and e.local_port is None for e in entries)
    assert all(e.tcp_state == "LISTEN" for e in entries)


def test_lsof_table_macos_unix_sockets_paths_and_peers():
    entries = parse_lsof_table(recording("macos/lsof_aUc_launchd_sim_appium.txt"))
    assert len(entries) == 18
    assert {e.pid for e in entries} == {81243, 35621}
    assert all(e.command == "launchd_s" and e.type == "unix" and e.node is None for e in entries)
    first = entries[0]
    assert first.fd == "3u" and first.device == "0x9461828ef425ac31"
    assert first.unix_path == "/private/tmp/com.apple.launchd.ULf9wKNtd5/com.apple.webinspectord_sim.socket"
    assert first.unix_peer is None and first.state is None
    peers = [e for e in entries if e.unix_peer]
    assert [(e.fd, e.unix_peer) for e in peers] == [
        ("6u", "0x9461828ef27d4b71"),
        ("7u", "0x9461828ef27d5021"),
        ("12u", "0x9461828ef425de31"),
    ]
    assert all(e.unix_path is None for e in peers)
    inspector = [e for e in entries if e.unix_path and e.unix_path.endswith("webinspectord_sim.socket")]
    assert [(e.pid, e.fd) for e in inspector] == [(81243, "3u"), (35621, "5u"), (35621, "10u")]
    assert inspector[1].matches_unix_path("/private/tmp/com.apple.launchd.zuM1XDJcwr/com.apple.webinspectord_sim.socket")


# --------------------------------------------------------------------------- lsof, Linux (recorded here)


def test_lsof_table_linux_listen_and_port():
    listen = parse_lsof_table(recording("linux/lsof_table_listen_15937.txt"))
    assert len(listen) == 1
    socat = listen[0]
    assert (socat.command, socat.pid, socat.user, socat.fd) == ("socat", 8243, "root", "5u")
    assert (socat.device, socat.protocol, socat.local_address, socat.local_port) == ("12255", "TCP", "127.0.0.1", 15937)
    assert socat.tcp_state == "LISTEN"

    port = parse_lsof_table(recording("linux/lsof_table_port_15937.txt"))
    assert [(e.command, e.pid, e.tcp_state) for e in port] == [
        ("socat", 8243, "LISTEN"),
        ("python3", 8246, "ESTABLISHED"),
        ("socat", 8287, "ESTABLISHED"),
    ]
    client = port[1]
    assert (client.local_port, client.remote, client.remote_address, client.remote_port) == (
        52074,
        "127.0.0.1:15937",
        "127.0.0.1",
        15937,
    )
    assert port[2].local_port == 15937 and port[2].remote_port == 52074


def test_lsof_fields_linux_tcp():
    entries = parse_lsof_fields(recording("linux/lsof_F_tcp_127_socat_relative.txt"))
    assert [(e.pid, e.command, e.fd, e.type, e.protocol, e.name, e.tcp_state) for e in entries] == [
        (8243, "socat", "5", "IPv4", "TCP", "127.0.0.1:15937", "LISTEN"),
        (8246, "python3", "3", "IPv4", "TCP", "127.0.0.1:52074->127.0.0.1:15937", "ESTABLISHED"),
        (8287, "socat", "6", "IPv4", "TCP", "127.0.0.1:15937->127.0.0.1:52074", "ESTABLISHED"),
    ]
    assert entries[1].remote_port == 15937 and entries[1].local_port == 52074
    second_run = parse_lsof_fields(recording("linux/lsof_F_tcp_socat_15938.txt"))
    assert [(e.pid, e.local_port, e.remote_port, e.tcp_state) for e in second_run] == [
        (8469, 15938, None, "LISTEN"),
        (8513, 15938, 45036, "ESTABLISHED"),
    ]


def test_lsof_linux_unix_relative_name_fields_and_table_agree():
    fields = parse_lsof_fields(recording("linux/lsof_F_unix_socat_relative.txt"))
    table = parse_lsof_table(recording("linux/lsof_table_unix_socat_relative.txt"))
    key = [(e.pid, e.fd.rstrip("u"), e.unix_path, e.unix_socket_type, e.state) for e in table]
    assert key == [(e.pid, e.fd, e.unix_path, e.unix_socket_type, e.state) for e in fields]
    listener = [e for e in fields if e.is_listening]
    assert len(listener) == 1
    backend = listener[0]
    # The process bound a relative path, so lsof names it relative (FAILURES.md #27).
    assert (backend.pid, backend.fd, backend.unix_path, backend.unix_socket_type) == (
        8240,
        "5",
        "helix-frame-export.sock",
        "STREAM",
    )
    assert backend.tcp_state is None  # a Unix socket's state is not a TCP state
    assert backend.matches_unix_path(f"{LINUX_SOCAT_CWD}/helix-frame-export.sock")
    assert backend.matches_unix_path(f"{LINUX_SOCAT_CWD}/helix-frame-export.sock", cwd=LINUX_SOCAT_CWD)
    assert not backend.matches_unix_path("/elsewhere/other.sock", cwd=LINUX_SOCAT_CWD)
    assert table[0].node == "12250" and table[0].device == "0x00000000a4826964"
    assert table[0].name == "type=DGRAM" and table[0].unix_path is None


def test_lsof_linux_cuts_unix_path_at_space():
    path = "/tmp/hdrec/Group Containers/helix-frame-export.sock"
    for entries in (
        parse_lsof_fields(recording("linux/lsof_F_unix_socat_space_path.txt")),
        parse_lsof_table(recording("linux/lsof_table_unix_socat_space_path.txt")),
    ):
        listener = [e for e in entries if e.is_listening]
        assert [(e.pid, e.unix_path) for e in listener] == [(8461, "/tmp/hdrec/Group")]
        assert listener[0].matches_unix_path(path)
        assert not listener[0].matches_unix_path("/tmp/hdrec/GroupX/helix-frame-export.sock")
        connected = [e for e in entries if e.unix_path == "/tmp/hdrec/Group" and not e.is_listening]
        assert [(e.pid, e.state) for e in connected] == [(8514, "CONNECTED")]


def test_lsof_linux_by_socket_path_prints_nothing():
    # Recorded while pid 8240 listened on that very path: Linux lsof cannot match a socket by path.
    assert recording("linux/lsof_table_sockpath_empty.txt") == ""
    assert parse_lsof_table(recording("linux/lsof_table_sockpath_empty.txt")) == []
    assert parse_lsof_fields("") == []


def test_lsof_fields_macos_style_SYNTHETIC():
    # SYNTHETIC: macOS -F output built from the lsof man page format (see .source.md).
    entries = parse_lsof_fields(recording("macos/lsof_F_utm_SYNTHETIC.txt"))
    assert [(e.pid, e.command, e.fd, e.type) for e in entries] == [
        (51270, "QEMULauncher", "23", "IPv4"),
        (51270, "QEMULauncher", "24", "unix"),
        (51270, "QEMULauncher", "25", "unix"),
        (59230, "socat", "5", "IPv4"),
        (59230, "socat", "6", "IPv4"),
    ]
    assert entries[0].local_port == 15937 and entries[0].tcp_state == "LISTEN"
    assert entries[1].unix_path == "helix-frame-export.sock"  # the name QEMU bound, relative to its cwd
    assert entries[1].matches_unix_path(f"{UTM_GROUP}/helix-frame-export.sock", cwd=UTM_GROUP)
    assert not entries[1].matches_unix_path(f"{UTM_GROUP}/helix-frame-export.sock", cwd="/Users/luke")
    assert entries[2].unix_peer == "0x9461828ef27d4b71" and entries[2].unix_path is None
    assert (entries[4].local_port, entries[4].remote_port, entries[4].tcp_state) == (5900, 51234, "ESTABLISHED")


def test_lsof_field_edge_cases():
    # -F0: NUL-terminated fields
    nul = "p42\x00cqemu-syst\x00\nf17\x00tIPv6\x00PTCP\x00n[::1]:5900\x00TST=LISTEN\x00\n"
    (entry,) = parse_lsof_fields(nul)
    assert (entry.pid, entry.command, entry.local_address, entry.local_port, entry.tcp_state) == (
        42,
        "qemu-syst",
        "::1",
        5900,
        "LISTEN",
    )
    # -Fpn (no f field): a repeated n starts a new file; unknown letters are skipped
    entries = parse_lsof_fields("p7\nn*:5900\nn*:5901\nXjunk\n")
    assert [(e.pid, e.local_address, e.local_port) for e in entries] == [(7, "*", 5900), (7, "*", 5901)]
    assert entries[0].type is None and entries[0].tcp_state is None
    # Linux abstract socket and a bytes input
    (abstract,) = parse_lsof_fields(b"p9\ncx\nf3\ntunix\nn@/tmp/.X11-unix/X0 type=STREAM\nTST=LISTEN\n")
    assert abstract.unix_path == "@/tmp/.X11-unix/X0" and abstract.is_listening


def test_lsof_entry_address_forms():
    def name(text: str) -> LsofEntry:
        return LsofEntry(pid=1, command="x", fd="3u", type="IPv4", protocol="TCP", name=text)

    assert (name("*:5900").local_address, name("*:5900").local_port) == ("*", 5900)
    assert (name("[::1]:5900").local_address, name("[::1]:5900").local_port) == ("::1", 5900)
    pair = name("[fe80::1]:4505->[fe80::2]:59367")
    assert (pair.local_address, pair.local_port, pair.remote_address, pair.remote_port) == ("fe80::1", 4505, "fe80::2", 59367)
    assert name("127.0.0.1:99999").local_port is None
    assert name("*:*").local_port is None


def test_lsof_table_tolerates_junk():
    text = "lsof: WARNING: can't stat() fuse file system\nnot a row\nCOMMAND PID USER FD TYPE DEVICE SIZE/OFF NODE NAME\n"
    assert parse_lsof_table(text) == []
    (row,) = parse_lsof_table("qemu-syst 51270 luke 23u IPv4 0x1 0t0 TCP 127.0.0.1:15937 (LISTEN)\n")
    assert (row.command, row.pid, row.local_port, row.tcp_state) == ("qemu-syst", 51270, 15937, "LISTEN")
    (reg,) = parse_lsof_table("QEMULaunc 51270 luke txt REG 1,17 1234 5678 /Applications/UTM.app/x (copy)\n")
    assert reg.name == "/Applications/UTM.app/x (copy)" and reg.state is None and reg.node == "5678"


# --------------------------------------------------------------------------- otool -L


def test_otool_homebrew_qemu_binary():
    deps = parse_otool_L(recording("macos/otool_L_qemu_system_aarch64_acvm.txt"))
    assert deps.binary == "Downloads/qemu-system-aarch64"
    assert len(deps.deps) == 8
    first = deps.deps[0]
    assert first.path == "/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation"
    assert (first.compatibility_version, first.current_version, first.kind) == ("150.0.0", "1770.255.0", "system")
    assert deps.suspicious_paths == (
        "/opt/homebrew/opt/pixman/lib/libpixman-1.0.dylib",
        "/opt/homebrew/opt/glib/lib/libgio-2.0.0.dylib",
        "/opt/homebrew/opt/glib/lib/libgobject-2.0.0.dylib",
        "/opt/homebrew/opt/glib/lib/libglib-2.0.0.dylib",
    )
    assert deps.paths_of_kind("package") == deps.suspicious_paths
    assert deps.paths_of_kind("build") == ()
    libz = deps.deps[3]
    assert (libz.path, libz.current_version, libz.kind) == ("/usr/lib/libz.1.dylib", "1.2.11", "system")


def test_otool_build_tree_paths_are_suspicious():
    deps = parse_otool_L(recording("macos/otool_L_qtcore_mixxx.txt"))
    assert deps.binary.endswith("Qt-5.10.1/lib/QtCore.framework/QtCore")
    build = (
        "/Users/mixxx/bs-2.2-mac-prs/amd64/environment/2.2-PR46-j00014-b9fd190-osx10.7-x86_64-release"
        "/Qt-5.10.1/lib/QtCore.framework/Versions/5/QtCore"
    )
    assert deps.suspicious_paths == (build,)
    assert deps.paths_of_kind("build") == (build,)
    assert deps.deps[3].path == "/usr/lib/libSystem.B.dylib" and deps.deps[3].current_version == "1226.10.1"


def test_otool_sysroot_rpath_fat_and_errors():
    # Shapes from FAILURES.md #32 and the otool(1) format; not a recording.
    text = (
        "/Applications/UTM.app/Contents/Frameworks/qemu-aarch64-softmmu.framework/Versions/A/qemu-aarch64-softmmu (architecture arm64):\n"
        "\t/Users/luke/pm/UTM/sysroot-macOS-arm64/lib/libqemu-aarch64-softmmu.dylib (compatibility version 0.0.0, current version 0.0.0)\n"
        "\t@rpath/pixman-1.0.framework/Versions/A/pixman-1.0 (compatibility version 41.0.0, current version 41.0.0)\n"
        "\t/Users/luke/pm/UTM/sysroot-macOS-arm64/lib/libpixman-1.0.dylib (compatibility version 41.0.0, current version 41.0.0)\n"
        "\t/usr/lib/libSystem.B.dylib (compatibility version 1.0.0, current version 1345.100.2, weak)\n"
    )
    deps = parse_otool_L(text)
    assert deps.architectures == ("arm64",)
    assert deps.binary.endswith("qemu-aarch64-softmmu.framework/Versions/A/qemu-aarch64-softmmu")
    assert deps.suspicious_paths == (
        "/Users/luke/pm/UTM/sysroot-macOS-arm64/lib/libqemu-aarch64-softmmu.dylib",
        "/Users/luke/pm/UTM/sysroot-macOS-arm64/lib/libpixman-1.0.dylib",
    )
    assert deps.deps[1].kind == "relative" and deps.deps[3].flags == ("weak",)
    assert all(d.architecture == "arm64" for d in deps.deps)
    with pytest.raises(ParseError, match="is not an object file"):
        parse_otool_L("/bin/ls.txt: is not an object file\n")
    with pytest.raises(ParseError):
        parse_otool_L("")
    assert parse_otool_L("/usr/lib/dyld:\n").deps == ()


# --------------------------------------------------------------------------- socat


def test_socat_helix_doc_command_lines():
    first, second = recording("macos/socat_cmdlines_helix_vsock_investigation.txt").split("\n\n")
    plain = parse_socat_cmdline(shell_words(first), cwd=UTM_GROUP)
    assert (plain.listen_port, plain.bind, plain.fork, plain.reuseaddr) == (5900, None, True, False)
    assert plain.target_kind == "unix" and plain.target_path_relative
    assert plain.target_path_as_written == "helix-frame-export.sock"
    assert plain.target_path == f"{UTM_GROUP}/helix-frame-export.sock"
    unresolved = parse_socat_cmdline(shell_words(first))
    assert unresolved.target_path == "helix-frame-export.sock" and unresolved.target_path_relative

    quoted = parse_socat_cmdline(shell_words(second))
    assert (quoted.listen_port, quoted.bind, quoted.fork, quoted.reuseaddr) == (5900, "127.0.0.1", True, True)
    assert quoted.listen.keyword == "TCP-LISTEN" and quoted.ip_version is None
    assert quoted.target_path == f"{UTM_GROUP}/helix-frame-export.sock" and not quoted.target_path_relative
    assert not quoted.rejoined_whitespace

    root = parse_socat_cmdline(shell_words(recording("macos/socat_cmdline_helix_root_cause.txt")))
    assert (root.listen_port, root.bind, root.target_path) == (5900, "127.0.0.1", "/tmp/helix-frame-export.sock")


def test_socat_from_recorded_linux_ps():
    rows = {e.pid: e for e in parse_ps_lines(recording("linux/ps_axo_socat_relative.txt"))}
    forwarder = parse_socat_cmdline(rows[8243].argv, cwd=LINUX_SOCAT_CWD)
    assert forwarder.global_options == ("-d", "-d")
    assert (forwarder.listen_port, forwarder.bind, forwarder.fork, forwarder.reuseaddr) == (15937, "127.0.0.1", True, True)
    assert forwarder.target_path == f"{LINUX_SOCAT_CWD}/helix-frame-export.sock"
    # the `timeout 60 socat ...` wrapper and the forked child read the same
    assert parse_socat_cmdline(rows[8241].argv, cwd=LINUX_SOCAT_CWD) == parse_socat_cmdline(
        rows[8241].command.split(), cwd=LINUX_SOCAT_CWD
    )
    assert parse_socat_cmdline(rows[8287].argv).listen_port == 15937
    backend = parse_socat_cmdline(rows[8240].argv, cwd=LINUX_SOCAT_CWD)
    assert backend.listen_kind == "unix-listen" and backend.listen_port is None
    assert backend.listen.params == ("helix-frame-export.sock",) and backend.target_kind == "exec"


def test_socat_rejoins_ps_split_space_path():
    rows = {e.pid: e for e in parse_ps_lines(recording("linux/ps_axo_socat_space_path.txt"))}
    config = parse_socat_cmdline(rows[8469].argv)
    assert config.rejoined_whitespace
    assert config.listen.keyword == "TCP4-LISTEN" and config.ip_version == 4
    assert (config.listen_port, config.bind, config.fork, config.reuseaddr) == (15938, "127.0.0.1", True, True)
    assert config.target_path == "/tmp/hdrec/Group Containers/helix-frame-export.sock"
    # the real argv (from /proc/PID/cmdline) needs no rejoining and reads the same
    real = parse_socat_cmdline(recording("linux/proc_cmdline_socat_space_path.txt").splitlines())
    assert not real.rejoined_whitespace and real.target_path == config.target_path
    backend = parse_socat_cmdline(rows[8461].argv)
    assert backend.listen.params == ("/tmp/hdrec/Group Containers/helix-frame-export.sock",)
    assert backend.listen.flag("fork") and backend.target_kind == "exec"


def test_socat_docker_readme_lines():
    broken, good = recording("linux/socat_cmdlines_xw_z_docker_readme.txt").split("\n\n")
    config = parse_socat_cmdline(shell_words(good))
    assert (config.listen_port, config.bind, config.fork, config.reuseaddr) == (2376, None, True, True)
    assert config.target_path == "/var/run/docker.sock"
    # The README breaks `TCP:127.0.0.1:2375` across two lines; the shell runs `... TCP:127.`.
    with pytest.raises(ParseError, match="HOST:PORT"):
        parse_socat_cmdline(shell_words(broken.splitlines()[0]))


def test_socat_quoted_address_from_real_script_is_refused():
    words = shell_words(recording("macos/socat_cmdline_roysamt_dnd.txt"))
    assert words[2].startswith('UNIX-CLIENT:"')
    with pytest.raises(ParseError, match="quotes"):
        parse_socat_cmdline(words)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["socat", "tcp-l:15937,reuseaddr=1,fork", "unix:/tmp/h.sock"], (15937, None, True, True, "unix", "/tmp/h.sock")),
        (["/opt/homebrew/bin/socat", "-v", "-lf", "/tmp/s.log", "TCP4-LISTEN:5900,bind=127.0.0.1", "UNIX-CLIENT:/tmp/h.sock"], (5900, "127.0.0.1", False, False, "unix", "/tmp/h.sock")),
        (["socat", "TCP6-LISTEN:5900,bind=[::1],reuseaddr=0,fork", "TCP:127.0.0.1:15937"], (5900, "::1", True, False, "tcp", None)),
        (["socat", "-d", "-d", "-b8192", "-t", "5", "Tcp-Listen:0,BIND=127.0.0.1:0", "TCP-CONNECT:[::1]:15937"], (0, "127.0.0.1", False, False, "tcp", None)),
        (["TCP-LISTEN:5900,fork", "UNIX-CONNECT:./rel.sock"], (5900, None, True, False, "unix", "/cwd/rel.sock")),
        (["socat", "UNIX-CONNECT:/tmp/h.sock", "TCP-LISTEN:5900"], (5900, None, False, False, "unix", "/tmp/h.sock")),
    ],
)
def test_socat_address_forms(argv, expected):
    config = parse_socat_cmdline(argv, cwd="/cwd")
    assert (config.listen_port, config.bind, config.fork, config.reuseaddr, config.target_kind, config.target_path) == expected


def test_socat_tcp_target_and_ip_versions():
    config = parse_socat_cmdline(["socat", "TCP6-LISTEN:5900,bind=[::1]", "TCP-CONNECT:[::1]:15937"])
    assert (config.ip_version, config.target_host, config.target_port) == (6, "::1", 15937)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["socat", "TCP-LISTEN:5900,fork", 'UNIX-CONNECT:"/Users/x/Group Containers/h.sock"'], "quotes"),
        (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/a\\:b.sock"], "backslash"),
        (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:/tmp/a:b.sock"], "':' inside the socket path"),
        (["socat", "TCP-LISTEN", "UNIX-CONNECT:/tmp/h.sock"], "no port"),
        (["socat", "TCP-LISTEN:,fork", "UNIX-CONNECT:/tmp/h.sock"], "no port"),
        (["socat", "TCP-LISTEN:vnc", "UNIX-CONNECT:/tmp/h.sock"], "not a number"),
        (["socat", "TCP-LISTEN:70000", "UNIX-CONNECT:/tmp/h.sock"], "not a number"),
        (["socat", "TCP-LISTEN:5900", "UNIX-CONNECT:"], "no socket path"),
        (["socat", "TCP-LISTEN:5900", "TCP:localhost"], "HOST:PORT"),
        (["socat", "TCP-LISTEN:5900"], "two addresses"),
        (["socat", "-lf"], "needs a value"),
        (["socat"], "two addresses"),
        (["ls", "-l"], "not a socat command line"),
        ([], "not a socat command line"),
        ("socat TCP-LISTEN:1 UNIX:/a STDIO", "two addresses"),
        ([b"socat", 5], "not a string"),
        (42, "argv list"),
    ],
)
def test_socat_errors(argv, message):
    with pytest.raises(ParseError, match=message):
        parse_socat_cmdline(argv)


# --------------------------------------------------------------------------- QEMU


def test_qemu_utm_launcher_command_from_ps():
    command = recording("macos/ps_command_utm_qemulauncher_james4ever0.txt").strip()
    config = parse_qemu_cmdline(command.split())
    assert config.launcher.endswith("/QEMULauncher.app/Contents/MacOS/QEMULauncher")
    assert config.binary == "/Applications/UTM.app/Contents/Frameworks/qemu-aarch64-softmmu.framework/Versions/A/qemu-aarch64-softmmu"
    assert config.rejoined_whitespace
    assert config.spice_addr == "/Users/jamesbrown/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM/B54F0831-B34F-404D-B600-5E2886D8AC53.spice"
    assert config.spice_gl == "off"
    assert config.virtio_gpu == "virtio-ramfb" and config.virtio_gpu is not None and not config.virtio_gpu_gl
    assert (config.accel, config.machine, config.helix_port) == (("hvf",), "virt", None)
    assert config.positional == ()
    assert "if=pflash,unit=1,file=/Volumes/Toshiba XG3/UTM VMs/Ubuntu ARM.utm/Data/efi_vars.fd" in config.option_values("drive")
    assert [d.driver for d in config.devices][:3] == ["virtio-net-pci", "virtio-ramfb", "intel-hda"]
    assert config.option_values("name") == ("Linux",)


def test_qemu_utm_exported_command_with_virtio_gpu_gl():
    config = parse_qemu_cmdline(shlex.split(recording("macos/qemu_command_txt_utm_issue5931.txt")))
    assert config.binary == "qemu-system-aarch64" and config.launcher is None
    assert config.virtio_gpu == "virtio-gpu-gl-pci" and config.virtio_gpu_gl
    assert (config.accel, config.machine, config.spice_gl) == (("hvf",), "virt", "on")
    assert config.spice_addr == "ACC49CFA-46EF-4CD8-ADC4-00BD85F3C54F.spice"  # relative: QEMU's cwd
    assert config.helix_port is None and not config.rejoined_whitespace
    assert ("S", None) in config.options and ("nodefaults", None) in config.options


def test_qemu_utm_running_log_without_binary():
    words = shlex.split(recording("macos/qemu_running_log_utm_issue4941.txt"))
    assert words[0] == "Running:"
    config = parse_qemu_cmdline(words[1:])
    assert config.binary is None and config.launcher is None
    assert config.spice_addr == "/Users/jezerm/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM/61B5D239-B49E-4988-9DCE-ABCE057C3CFF.spice"
    assert (config.virtio_gpu, config.machine, config.accel, config.spice_gl) == ("virtio-gpu-gl-pci", "virt-7.2", ("hvf",), "on")


def test_qemu_helix_for_mac_argv_SYNTHETIC():
    # SYNTHETIC: argv filled in from helixml/helix for-mac/vm.go's argument template.
    argv = recording("macos/qemu_argv_helix_for_mac_SYNTHETIC.txt").splitlines()
    config = parse_qemu_cmdline(argv)
    assert (config.helix_port, config.helix_port_raw, config.helix_device) == (41937, "41937", "virtio-gpu-gl-pci")
    assert config.virtio_gpu_gl and config.accel == ("hvf",) and config.machine == "virt"
    assert config.spice_gl == "es" and config.spice_addr.endswith("/T/helix-spice.sock")
    gpu = next(d for d in config.devices if d.driver == "virtio-gpu-gl-pci")
    assert (gpu.prop("xres"), gpu.prop("venus"), gpu.prop("hostmem")) == ("5120", "true", "256M")
    assert config.option_values("qmp") == ("tcp:localhost:41444,server,nowait",)
    assert config.binary.endswith("Helix.app/Contents/MacOS/qemu-system-aarch64")
    assert config.max_outputs == 16 and config.network_kinds == ("user",)
    assert config.hostfwds == ("tcp::41222-:22", "tcp::41080-:8080")


def test_qemu_option_forms_and_edge_cases():
    config = parse_qemu_cmdline(
        [
            "qemu-system-aarch64",
            "-device=virtio-gpu-gl-pci,helix-port=15937",
            "--display",
            "cocoa,gl=es",
            "-machine",
            "type=virt,accel=hvf:tcg",
            "-enable-kvm",
            "disk.img",
            "-device",
        ]
    )
    assert (config.helix_port, config.virtio_gpu) == (15937, "virtio-gpu-gl-pci")
    assert config.display == ("cocoa,gl=es",)
    assert (config.machine, config.accel) == ("virt", ("hvf", "tcg", "kvm"))
    assert config.positional == ("disk.img",)
    assert config.options[-1] == ("device", None)

    via_global = parse_qemu_cmdline(["qemu", "-device", "virtio-gpu-gl-pci", "-global", "virtio-gpu-gl-pci.helix-port=41937"])
    assert (via_global.helix_port, via_global.helix_device) == (41937, "virtio-gpu-gl-pci")
    bad = parse_qemu_cmdline(["qemu", "-device", "virtio-gpu-gl-pci,helix-port=abc"])
    assert (bad.helix_port, bad.helix_port_raw) == (None, "abc")
    commas = parse_qemu_cmdline(["qemu", "-device", "virtio-gpu-pci,id=a,,b"])
    assert commas.devices[0].prop("id") == "a,b" and commas.virtio_gpu == "virtio-gpu-pci"
    assert parse_qemu_cmdline(["qemu-system-x86_64", "-device", "e1000"]).virtio_gpu is None
    with pytest.raises(ParseError):
        parse_qemu_cmdline([])
    with pytest.raises(ParseError):
        parse_qemu_cmdline(None)


# --------------------------------------------------------------------------- ps


def test_ps_axo_lstart_linux():
    entries = parse_ps_lines(recording("linux/ps_axo_socat_relative.txt"))
    assert [(e.pid, e.ppid) for e in entries] == [
        (8238, 8235), (8240, 8238), (8241, 8235), (8243, 8241),
        (8244, 8235), (8246, 8244), (8287, 8243), (8288, 8240),
    ]  # fmt: skip
    socat = entries[3]
    assert socat.started == "Tue Nov 24 02:03:35 2026"
    assert socat.command == "socat -d -d TCP-LISTEN:15937,bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:helix-frame-export.sock"
    assert socat.executable == "socat" and socat.argv[1:3] == ("-d", "-d")


def test_ps_aux_linux():
    entries = parse_ps_lines(recording("linux/ps_aux_socat_relative.txt"))
    assert len(entries) == 8
    first = entries[0]
    assert (first.pid, first.user, first.started, first.ppid) == (8238, "root", "02:03", None)
    assert first.command == "timeout 60 socat UNIX-LISTEN:helix-frame-export.sock,fork EXEC:/bin/cat"
    python = next(e for e in entries if e.pid == 8246)
    assert python.executable == "/root/.pyenv/versions/3.11.7/bin/python3"


def test_ps_axo_utm_SYNTHETIC():
    # SYNTHETIC: pid/ppid/lstart invented; the command texts are the real recordings.
    entries = parse_ps_lines(recording("macos/ps_axo_utm_SYNTHETIC.txt"))
    assert [(e.pid, e.ppid, e.started) for e in entries] == [
        (1720, 1, "Thu Feb 5 07:39:58 2026"),
        (51270, 51268, "Fri Feb 6 07:40:19 2026"),
        (59230, 59101, "Fri Feb 6 07:41:02 2026"),
    ]
    qemu = parse_qemu_cmdline(entries[1].argv)
    assert qemu.binary.endswith("qemu-aarch64-softmmu") and qemu.virtio_gpu is not None
    socat = parse_socat_cmdline(entries[2].argv)
    assert socat.rejoined_whitespace and socat.target_path == f"{UTM_GROUP}/helix-frame-export.sock"


def test_ps_other_layouts():
    ef = "  UID   PID  PPID   C STIME   TTY           TIME CMD\n  501 51270     1   0  7:40AM ??         3:01.02 /Applications/UTM.app/x -L y\n"
    (row,) = parse_ps_lines(ef)
    assert (row.pid, row.ppid, row.user, row.started, row.command) == (51270, 1, "501", "7:40AM", "/Applications/UTM.app/x -L y")
    assert [(e.pid, e.ppid) for e in parse_ps_lines("  12   1 socat A B\n  13 socat C D\n")] == [(12, 1), (13, None)]
    assert parse_ps_lines("garbage\n\n  \n") == []


# --------------------------------------------------------------------------- never anything but ParseError

_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_lsofish = st.text(alphabet="pcfntPTSL=0123456789:*[]->/ \n\tabcuxIPv46TCPLISTEN()\x00", max_size=300)
_argv_piece = st.text(alphabet="socatTCP-LISTENUNIXtcpl:,=[]/.0123456789 \"'\\-bdvlfhelixportdevicegpu", max_size=40)


_socat_keyword = st.sampled_from(
    ["TCP-LISTEN", "tcp-l", "TCP4-LISTEN", "TCP6-L", "UNIX-CONNECT", "unix", "UNIX-LISTEN", "TCP", "TCP6-CONNECT",
     "EXEC", "STDIO", "-", "ABSTRACT-CONNECT", "/dev/null", "./x", "5", "Containers/x"]
)  # fmt: skip
_socat_address = st.builds(
    lambda keyword, sep, rest: keyword + sep + rest,
    _socat_keyword,
    st.sampled_from([":", ",", "", ":["]),
    st.text(alphabet="0123456789abc:[]/,=.- bindforkreuseaddr", max_size=30),
)
_qemu_piece = st.one_of(
    st.sampled_from(["-device", "--device", "-global", "-machine", "-M", "-accel", "-spice", "-enable-kvm", "-S", "-display", "-"]),
    st.builds(lambda rest: "virtio-gpu-gl-pci,helix-port=" + rest, st.text(max_size=8)),
    st.builds(lambda rest: "x.helix-port=" + rest, st.text(max_size=8)),
    st.builds(lambda rest: "accel=" + rest, st.text(alphabet="hvf:tcg,=", max_size=10)),
    st.text(alphabet="-=,:a1 ", max_size=10),
)


def _only_parse_errors(call, *args):
    with contextlib.suppress(ParseError):
        call(*args)


@_FUZZ
@given(st.one_of(st.text(max_size=400), _lsofish, st.binary(max_size=200)))
def test_text_parsers_raise_only_parse_error(text):
    for parser in (parse_lsof_fields, parse_lsof_table, parse_otool_L, parse_ps_lines):
        _only_parse_errors(parser, text)


@_FUZZ
@given(st.lists(st.one_of(st.text(max_size=30), _argv_piece), max_size=12), st.one_of(st.none(), st.text(max_size=20)))
def test_argv_parsers_raise_only_parse_error(argv, cwd):
    _only_parse_errors(parse_socat_cmdline, argv, cwd)
    _only_parse_errors(parse_socat_cmdline, ["socat", *argv], cwd)
    _only_parse_errors(parse_qemu_cmdline, argv)
    _only_parse_errors(parse_qemu_cmdline, ["qemu-system-aarch64", *argv])


@_FUZZ
@given(st.from_type(object))
def test_parsers_reject_non_text_with_parse_error(value):
    # non-string input: a ParseError, never a TypeError or AttributeError
    for parser in (parse_lsof_fields, parse_lsof_table, parse_otool_L, parse_ps_lines, parse_qemu_cmdline):
        _only_parse_errors(parser, value)
    _only_parse_errors(parse_socat_cmdline, value, None)


@_FUZZ
@given(st.lists(st.one_of(_socat_address, st.sampled_from(["-d", "-v", "-lf", "-b", "-t5", "-"])), max_size=6), st.one_of(st.none(), st.just("/cwd"), st.just("")))
def test_socat_address_shapes_raise_only_parse_error(argv, cwd):
    _only_parse_errors(parse_socat_cmdline, ["socat", *argv], cwd)


@_FUZZ
@given(st.lists(_qemu_piece, max_size=12))
def test_qemu_option_shapes_raise_only_parse_error(argv):
    _only_parse_errors(parse_qemu_cmdline, ["qemu-system-aarch64", *argv])
