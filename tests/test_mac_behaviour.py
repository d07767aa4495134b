"""The Mac as it really behaves, exercised on Linux: socket holders found by the name each
process bound (relative to its cwd, through symlinked directories like /tmp → /private/tmp),
and the stale-socket rule that keeps a busy live socket (which refuses connections on macOS)
from being removed while still removing the seed's stale file.

Real processes and sockets where Linux can show the behaviour; the macOS lsof output is the
recording under tests/recordings/macos/ (see its .source.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, helixdiag_cmd

from helixdiag import selftest
from helixdiag.observe.backend import unix_holders
from helixdiag.observe.facts import Observations
from helixdiag.observe.parsers import parse_lsof_fields
from helixdiag.observe.processes import ProcInfo
from helixdiag.observe.stale import removal_verdict

pytestmark = pytest.mark.timeout(60)

RECORDINGS = REPO / "tests" / "recordings"
UTM_GROUP = "/Users/luke/Library/Group Containers/WDNLXAD4W8.com.utmapp.UTM"
SOCKET_NAME = "helix-frame-export.sock"


def _proc(pid: int, cwd: str, name: str = "QEMULauncher") -> ProcInfo:
    return ProcInfo(pid=pid, name=name, exe=None, argv=(name,), cwd=cwd, started=None)


def test_macos_lsof_names_a_relatively_bound_socket_and_its_holder_is_found():
    entries = parse_lsof_fields((RECORDINGS / "macos" / "lsof_F_utm_SYNTHETIC.txt").read_text())
    path = f"{UTM_GROUP}/{SOCKET_NAME}"
    holders = unix_holders(entries, path, [_proc(51270, UTM_GROUP), _proc(59230, "/Users/luke", "socat")])
    assert [(h.pid, h.address) for h in holders] == [(51270, SOCKET_NAME)]
    # The same name bound by a process elsewhere is another socket.
    assert unix_holders(entries, path, [_proc(51270, "/Users/luke")]) == []


@pytest.fixture
def linked_dir(short_tmp: Path) -> tuple[Path, Path]:
    """A real directory and a symlink to it, as /tmp is to /private/tmp on a Mac."""
    real = short_tmp / "real"
    real.mkdir()
    link = short_tmp / "link"
    link.symlink_to(real)
    return real, link


def _bind_relative(cwd: Path) -> subprocess.Popen:
    """A process that binds the relative name `helix-frame-export.sock` in its cwd and listens."""
    code = ("import socket, sys, time\n"
            f"s = socket.socket(socket.AF_UNIX); s.bind({SOCKET_NAME!r}); s.listen(1)\n"
            "print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_relatively_bound_socket_is_held_by_its_process_whatever_path_names_it(linked_dir):
    real, link = linked_dir
    holder = _bind_relative(real)
    try:
        for path in (real / SOCKET_NAME, link / SOCKET_NAME):
            found = Observations().socket_holders(str(path))
            assert [h.pid for h in found] == [holder.pid], (path, found)
            assert found[0].listening
    finally:
        holder.kill()
        holder.wait(5)


def _stale_socket(path: Path) -> None:
    """Bind, then let the owner die: the file stays, connect() is refused."""
    subprocess.run([sys.executable, "-c", "import os, signal, socket, sys\n"
                    "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen()\n"
                    "os.kill(os.getpid(), signal.SIGKILL)\n", str(path)], timeout=10)


def test_a_socket_younger_than_the_qemu_in_its_directory_is_never_removed(short_tmp):
    stack = selftest.Stack(root=short_tmp)
    try:
        qemu = stack.start_fake_qemu()
        time.sleep(1.2)  # the socket comes after QEMU: QEMU may have bound it
        path = short_tmp / SOCKET_NAME
        _stale_socket(path)
        verdict = removal_verdict(str(path))
        assert not verdict.removable
        assert f"QEMU pid {qemu.pid}" in verdict.rule and "may have bound it" in verdict.rule
        served = subprocess.run(helixdiag_cmd("serve", "--unix", str(path)), capture_output=True, text=True,
                                timeout=30, env={**os.environ, "NO_COLOR": "1"})
        assert served.returncode == 2 and "may have bound it" in served.stderr, served.stderr
        assert path.is_socket(), "the socket was removed"
    finally:
        stack.close()


def test_the_seeds_stale_socket_older_than_every_qemu_is_removable(short_tmp):
    stack = selftest.Stack(root=short_tmp)
    try:
        path = short_tmp / SOCKET_NAME
        _stale_socket(path)
        os.utime(path, (time.time() - 60, time.time() - 60))  # left by an earlier run
        stack.start_fake_qemu()
        verdict = removal_verdict(str(path))
        assert verdict.removable, verdict.rule
        assert "older than every QEMU" in verdict.rule
        assert path.is_socket(), "a verdict alone removes nothing"
    finally:
        stack.close()


def test_a_held_socket_that_refuses_is_not_removed(short_tmp):
    """A process holds the socket open but does not accept (its backlog full, or not
    listening yet): connect() is refused, yet it is not stale."""
    path = short_tmp / SOCKET_NAME
    code = ("import socket, sys, time\n"
            "s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])\n"  # bound, never listening
            "print('ready', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ConnectionRefusedError):
            socket.socket(socket.AF_UNIX).connect(str(path))
        verdict = removal_verdict(str(path))
        assert not verdict.removable and f"pid {holder.pid}" in verdict.rule, verdict.rule
    finally:
        holder.kill()
        holder.wait(5)


def _as_nobody(func, *args):
    """Run `func(*args)` in a forked child that has dropped to user nobody (root is never
    denied a look): its repr comes back through a pipe."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, repr(func(*args)).encode())
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_end, f"child failed: {type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        out = fh.read()
    os.waitpid(pid, 0)
    return out


def test_a_path_we_may_not_look_at_is_a_permission_problem_not_a_wrong_file(short_tmp):
    """macOS 15 refuses a terminal's look into another app's container (EPERM); Linux shows the
    same with a directory nobody else may search (EACCES). Either is socket-permission."""
    from helixdiag import config
    from helixdiag.unixsock import classify

    private = short_tmp / "container"
    private.mkdir(mode=0o700)
    _stale_socket(private / SOCKET_NAME)
    short_tmp.chmod(0o755)
    state = _as_nobody(lambda: classify(str(private / SOCKET_NAME)).state.value)
    assert state == "'permission'", state
    seen = _as_nobody(config._may_exist, private / SOCKET_NAME)
    assert seen == "'unreadable'", seen
    # Everything the run needs is imported before dropping to nobody, who cannot read the
    # interpreter's own library directory under /root.
    import queue  # noqa: F401

    import av  # noqa: F401

    from helixdiag import runner
    from helixdiag.config import RunConfig
    from helixdiag.probes import REGISTRY, load

    load()

    def probe_as_seen_by_nobody() -> tuple[str | None, str]:
        cfg = RunConfig(side="host", topology="socat", socket=str(private / SOCKET_NAME), timeout=1.0)
        cfg.sources = {"socket": "--socket", "topology": "--topology"}
        result = runner.Runner(cfg, [REGISTRY["unix-socket.path"]]).run().probes[0]
        return result.failure_id, result.remedy or ""

    failure_id, remedy = eval(_as_nobody(probe_as_seen_by_nobody))  # noqa: S307 - our own repr
    assert failure_id == "socket-permission"
    assert "Full Disk Access" in remedy
    assert (private / SOCKET_NAME).is_socket()


def test_an_lsof_that_fails_says_unknown_never_nothing_listens(monkeypatch):
    from helixdiag.observe.macos import MacBackend

    monkeypatch.setenv("PATH", "/nonexistent")  # lsof neither on PATH nor in /usr/sbin here
    listeners, unknown = MacBackend().tcp_listeners()
    assert listeners == [] and unknown and "lsof failed" in unknown and "not installed" in unknown


@pytest.mark.parametrize("serving", [True, False])
def test_qemu_listener_with_an_unknown_listener_list_asks_the_port_itself(monkeypatch, serving):
    """The Mac backend with no working lsof: QEMU's listener cannot be seen; a connect() to the
    port decides between "something accepts there" (unknown, not a failure) and nobody does."""
    from helixdiag import runner
    from helixdiag.config import RunConfig
    from helixdiag.observe.macos import MacBackend
    from helixdiag.probes import REGISTRY, load

    load()
    stack = selftest.Stack()
    try:
        port = selftest.free_port()
        qemu = stack.start_fake_qemu(port, serve=serving)
        monkeypatch.setenv("PATH", "/nonexistent")
        cfg = RunConfig(side="host", port=port, timeout=1.0)
        cfg.sources = {"port": "--port"}
        probes = [REGISTRY["qemu.process"], REGISTRY["qemu.listener"]]
        report = runner.Runner(cfg, probes, observations=Observations(backend=MacBackend())).run()
    finally:
        stack.close()
    by_id = {p.id: p for p in report.probes}
    assert by_id["qemu.process"].evidence["pid"] == qemu.pid
    listener = by_id["qemu.listener"]
    assert "lsof failed" in listener.evidence["listeners_unknown"]
    if serving:
        assert listener.status == "skip" and "accepts connections" in listener.summary, listener.summary
    else:  # nobody accepts: the QEMU just started, so it is still booting
        assert listener.failure_id == "qemu-still-booting"
        assert listener.evidence["connect"] == f"127.0.0.1:{port} refused"


def _qemu_like(binary: Path, args: list[str], code: str = "import time; time.sleep(60)") -> subprocess.Popen:
    """A process whose command line is a QEMU's: a copy of this interpreter named like the QEMU
    binary, with the recorded QEMU options after a `-c CODE` the interpreter runs."""
    binary.parent.mkdir(parents=True, exist_ok=True)
    if not binary.exists():
        binary.write_bytes(Path(os.path.realpath(sys.executable)).read_bytes())
        binary.chmod(0o755)
        os.utime(binary, (time.time() - 60, time.time() - 60))
    env = {**os.environ, "PYTHONHOME": f"{sys.base_prefix}{os.pathsep}{sys.base_exec_prefix}"}
    return subprocess.Popen([str(binary), "-c", code, *args], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _run_json(*args: str) -> dict:
    import json

    proc = subprocess.run(helixdiag_cmd("run", *args, "--json", "-"), capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"}, cwd=REPO)
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def _by_id(doc: dict) -> dict[str, dict]:
    return {p["id"]: p for p in doc["probes"]}


def test_the_helix_apps_qemu_is_recognised_with_its_facts(short_tmp):
    recorded = (RECORDINGS / "macos" / "qemu_argv_helix_for_mac_SYNTHETIC.txt").read_text().splitlines()
    port = selftest.free_port()
    args = [a.replace("helix-port=41937", f"helix-port={port}") for a in recorded[1:]]
    qemu = _qemu_like(short_tmp / "Helix.app" / "Contents" / "MacOS" / "qemu-system-aarch64", args)
    try:
        doc = _run_json("qemu", "--side", "host", "--port", str(port), "--timeout", "1")
    finally:
        qemu.kill()
        qemu.wait(5)
    probes = _by_id(doc)
    process = probes["qemu.process"]["evidence"]
    assert process["pid"] == qemu.pid and process["app"] == "helix-app"
    assert process["config"]["max_outputs"] == 16 and process["config"]["network"] == ["user"]
    assert probes["qemu.network"]["status"] == "pass"
    assert probes["qemu.network"]["evidence"]["hostfwd"] == ["tcp::41222-:22", "tcp::41080-:8080"]
    # Just started and not listening: booting, not broken.
    assert probes["qemu.listener"]["failure_id"] == "qemu-still-booting"
    assert "Logs tab" in probes["qemu.log"]["summary"]
    assert doc["topology"]["kind"] == "tcp" and doc["topology"]["listen_port"] == port


def test_vmnet_networking_is_named_when_the_export_listens_on_loopback_only(short_tmp):
    recorded = (RECORDINGS / "macos" / "ps_command_utm_qemulauncher_james4ever0.txt").read_text().split()
    port = selftest.free_port()
    options = recorded[recorded.index("-L"):] + ["-device", f"virtio-gpu-gl-pci,helix-port={port}"]
    listen = ("import socket, time\ns = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
              f"s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)\n")
    qemu = _qemu_like(short_tmp / "qemu-system-aarch64", options, listen)
    try:
        assert selftest.wait_listening(port)
        doc = _run_json("qemu", "--side", "host", "--port", str(port), "--timeout", "1")
    finally:
        qemu.kill()
        qemu.wait(5)
    network = _by_id(doc)["qemu.network"]
    assert network["failure_id"] == "qemu-network-vmnet", network["summary"]
    assert network["evidence"]["netdev"] == ["vmnet-shared,id=net0"]
    assert network["evidence"]["listening_on"] == [f"127.0.0.1:{port}"]
    assert doc["diagnosis"]["root_cause"]["failure_id"] == "qemu-network-vmnet"


def test_a_socat_we_may_not_read_is_named_not_called_missing():
    """A socat started with sudo: its command line cannot be read (psutil AccessDenied, and
    macOS ps shows only "(socat)"), so which port it forwards is unknown — not 'not running'."""
    from helixdiag.config import RunConfig
    from helixdiag.probes import REGISTRY, load
    from helixdiag.probes.context import ProbeContext
    from helixdiag.topology import Topology, _socat

    load()
    hidden = _socat(ProcInfo(pid=4242, name="socat", exe=None, argv=(), cwd=None, started=None,
                             argv_unreadable=True))
    assert hidden.config is None and "not readable without sudo" in hidden.error
    cfg = RunConfig(side="host", port=5900)
    ctx = ProbeContext(cfg)
    ctx.__dict__["topology"] = Topology("socat", "socket given", 5900, "--port", "/tmp/x.sock", "--socket",
                                        all_socat=[hidden])
    outcome = REGISTRY["socat.process"].func(ctx)
    assert outcome.status == "skip" and "socat pid 4242" in outcome.summary and "sudo" in outcome.summary


def test_libx264_where_the_real_host_uses_videotoolbox_is_a_warning():
    """The Mac backend expects VideoToolbox; here (no VideoToolbox) the real libx264 encodes."""
    from helixdiag import runner
    from helixdiag.config import RunConfig
    from helixdiag.observe.macos import MacBackend
    from helixdiag.probes import REGISTRY, load

    load()
    cfg = RunConfig(side="host", size=(320, 240))
    report = runner.Runner(cfg, [REGISTRY["encoder.session"]], observations=Observations(backend=MacBackend())).run()
    result = report.probes[0]
    assert (result.status, result.failure_id) == ("warn", "encoder-software-fallback"), result.summary
    assert result.evidence["encoder"] == "x264" and "videotoolbox" in result.summary
    linux = runner.Runner(cfg, [REGISTRY["encoder.session"]]).run().probes[0]
    assert linux.status == "pass"  # on Linux libx264 is what a stand-in host uses


def test_utms_debug_log_is_found_in_the_vm_bundle_named_by_the_drives(short_tmp):
    recorded = (RECORDINGS / "macos" / "ps_command_utm_qemulauncher_james4ever0.txt").read_text()
    from helixdiag.observe.parsers import parse_qemu_cmdline

    assert parse_qemu_cmdline(recorded).utm_data_dir == "/Volumes/Toshiba XG3/UTM VMs/Ubuntu ARM.utm/Data"

    data = short_tmp / "Linux.utm" / "Data"
    data.mkdir(parents=True)
    port = selftest.free_port()
    options = ["-drive", f"if=pflash,unit=1,file={data}/efi_vars.fd", "-netdev", "user,id=net0",
               "-device", f"virtio-gpu-gl-pci,helix-port={port}"]
    qemu = _qemu_like(short_tmp / "qemu-system-aarch64", options)
    try:
        without = _by_id(_run_json("qemu.log", "--side", "host", "--port", str(port)))["qemu.log"]
        (data / "debug.log").write_text((REPO / "tests" / "logs" / "qemu_h2_healthy.log").read_text())
        found = _by_id(_run_json("qemu.log", "--side", "host", "--port", str(port)))["qemu.log"]
    finally:
        qemu.kill()
        qemu.wait(5)
    assert without["status"] == "skip" and "Debug Log" in without["summary"], without["summary"]
    assert found["status"] == "pass", found["summary"]
    assert found["evidence"]["log"] == str(data / "debug.log")


def test_restart_the_vm_names_the_vm_and_the_command():
    from helixdiag.observe.parsers import parse_qemu_cmdline
    from helixdiag.topology import QemuInstance

    utm = parse_qemu_cmdline((RECORDINGS / "macos" / "ps_command_utm_qemulauncher_james4ever0.txt").read_text())
    helix = parse_qemu_cmdline((RECORDINGS / "macos" / "qemu_argv_helix_for_mac_SYNTHETIC.txt").read_text().splitlines())
    process = _proc(1, "/")
    assert QemuInstance(process, utm).restart_how() == \
        'restart the VM (`utmctl stop "Linux"`, then `utmctl start "Linux"`)'
    assert "Helix app" in QemuInstance(process, helix).restart_how()
    assert QemuInstance(process, None).restart_how() == "restart the VM"


def test_the_bundle_carries_the_raw_outputs_behind_the_facts_redacted(short_tmp):
    """So that the first report from a real Mac can replace the SYNTHETIC recordings: the
    commands a run ran with their output, and the QEMU and socat command lines — redacted."""
    import json
    import tarfile

    secret = "s3cr3t-in-argv-7731"
    port = selftest.free_port()
    qemu = _qemu_like(short_tmp / "qemu-system-aarch64",
                      ["-name", secret, "-netdev", "user,id=net0", "-device", f"virtio-gpu-gl-pci,helix-port={port}"])
    bundle = short_tmp / "ticket.tar.gz"
    try:
        proc = subprocess.run(helixdiag_cmd("run", "--all", "--side", "both", "--port", str(port), "--timeout", "1",
                                            "--bundle", str(bundle)),
                              capture_output=True, text=True, timeout=60, cwd=REPO,
                              env={**os.environ, "NO_COLOR": "1", "MY_API_TOKEN": secret})
    finally:
        qemu.kill()
        qemu.wait(5)
    assert "Traceback" not in proc.stderr and bundle.exists(), proc.stderr
    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    processes = files["raw/processes.txt"]
    assert f"{qemu.pid} " in processes and f"helix-port={port}" in processes
    assert secret not in processes and "<redacted:MY_API_TOKEN>" in processes
    assert "$ gst-inspect-1.0 vsockenc\n# exit " in files["raw/commands.txt"]  # a command and its output
    manifest = json.loads(files["manifest.json"])
    assert "env:MY_API_TOKEN" in manifest["redactions"]
    assert any(f["name"] == "raw/processes.txt" for f in manifest["files"])
