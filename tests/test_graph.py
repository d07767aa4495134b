"""The diagnosis as pure data: hand-built probe results in, root cause and symptoms out."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag import graph
from helixdiag.failures import CATALOG
from helixdiag.layers import LAYER_NAMES
from helixdiag.results import ProbeResult, Status

pytestmark = pytest.mark.timeout(120)


def res(probe_id: str, status: str = "pass", failure_id: str | None = None, layer: str | None = None) -> ProbeResult:
    return ProbeResult(id=probe_id, layer=layer or probe_id.split(".", 1)[0], side="host",
                       status=Status(status), summary=f"{probe_id} {status}", failure_id=failure_id)


def fail(probe_id: str, failure_id: str, layer: str | None = None) -> ProbeResult:
    return res(probe_id, "fail", failure_id, layer)


def symptom_ids(diagnosis) -> set[str]:
    return {s["failure_id"] for s in diagnosis.symptoms}


def test_classic_stale_socket_is_the_root_and_the_rest_are_symptoms():
    results = [
        res("qemu.process"),
        res("socat.process"),
        fail("unix-socket.accept", "socket-stale"),
        fail("qemu.listener", "qemu-not-listening"),
        fail("guest-tcp.ping", "guest-no-reply"),
        fail("stream.ping", "stream-connect-failed"),
    ]
    d = graph.diagnose(results, "socat")
    assert d.status == "fail"
    assert d.root_cause is not None
    assert d.root_cause.failure_id == "socket-stale"
    assert d.root_cause.probe == "unix-socket.accept"
    assert d.root_cause.layer == "unix-socket"
    assert d.root_cause.remedy  # the catalog remedy when the probe gave none
    assert symptom_ids(d) == {"qemu-not-listening", "guest-no-reply", "stream-connect-failed"}
    assert d.findings[0] == "socket-stale"
    assert set(d.findings) == {"socket-stale", "qemu-not-listening", "guest-no-reply", "stream-connect-failed"}


@pytest.mark.parametrize("order", [1, -1])
def test_classic_case_does_not_depend_on_result_order(order):
    results = [
        fail("guest-tcp.ping", "guest-no-reply"),
        fail("stream.ping", "stream-connect-failed"),
        fail("qemu.listener", "qemu-not-listening"),
        fail("unix-socket.accept", "socket-stale"),
    ][::order]
    assert graph.diagnose(results, "socat").root_cause.failure_id == "socket-stale"


@pytest.mark.parametrize("topology", ["socat", "tcp"])
def test_socket_not_a_socket_beats_qemu_bind_failed(topology):
    results = [fail("qemu.log", "qemu-bind-failed", "qemu"), fail("unix-socket.path", "socket-not-a-socket")]
    d = graph.diagnose(results, topology)
    assert d.root_cause.failure_id == "socket-not-a-socket"
    assert symptom_ids(d) == {"qemu-bind-failed"}


def test_port_mismatch_beats_guest_tcp_refused():
    results = [fail("guest-tcp.connect", "guest-tcp-refused"), fail("guest-tcp.port", "port-mismatch")]
    for topology in ("socat", "tcp"):
        d = graph.diagnose(results, topology)
        assert d.root_cause.failure_id == "port-mismatch"
        assert symptom_ids(d) == {"guest-tcp-refused"}
        assert d.findings == ["port-mismatch", "guest-tcp-refused"]


@pytest.mark.parametrize("topology", ["socat", "tcp"])
def test_stream_no_reply_explains_guest_no_reply_not_the_reverse(topology):
    results = [fail("guest-tcp.ping", "guest-no-reply"), fail("stream.ping", "stream-no-reply")]
    d = graph.diagnose(results, topology)
    assert d.root_cause.failure_id == "stream-no-reply"
    assert d.root_cause.probe == "stream.ping"
    assert d.symptoms == [{"probe": "guest-tcp.ping", "failure_id": "guest-no-reply"}]
    closure = graph.needs_closure(topology)
    assert "stream" in closure["guest-tcp"]
    assert "guest-tcp" not in closure["stream"]


def test_tcp_topology_qemu_not_listening_beats_guest_tcp_refused():
    results = [
        res("socat.process", "skip"),
        fail("guest-tcp.connect", "guest-tcp-refused"),
        fail("qemu.listener", "qemu-not-listening"),
    ]
    d = graph.diagnose(results, "tcp")
    assert d.root_cause.failure_id == "qemu-not-listening"
    assert symptom_ids(d) == {"guest-tcp-refused"}
    # In the tcp topology there is no socat/unix-socket hop between the guest and QEMU.
    assert graph.DEPENDS_ON["tcp"]["socat"] == ()
    assert "socat" not in graph.needs_closure("tcp")["guest-tcp"]


def test_socat_layer_is_not_needed_by_the_guest_in_tcp_topology():
    # A leftover socat failure must not be blamed for the guest's refusal when QEMU listens itself.
    results = [fail("socat.process", "socat-not-running"), fail("guest-tcp.connect", "guest-tcp-refused")]
    d_tcp = graph.diagnose(results, "tcp")
    assert "guest-tcp-refused" not in symptom_ids(d_tcp)
    d_socat = graph.diagnose(results, "socat")
    assert d_socat.root_cause.failure_id == "socat-not-running"
    assert symptom_ids(d_socat) == {"guest-tcp-refused"}


def test_warnings_only_is_warn_without_root():
    results = [res("socat.process", "warn", "socat-no-fork"), res("stream.exchange", "warn", "stream-slow"),
               res("qemu.process")]
    d = graph.diagnose(results, "socat")
    assert d.status == "warn"
    assert d.root_cause is None
    assert d.findings == ["socat-no-fork", "stream-slow"]
    assert d.symptoms == []


def test_errors_make_the_diagnosis_fail():
    results = [res("qemu.process"), res("stream.ping", "error")]
    d = graph.diagnose(results, "socat")
    assert d.status == "fail"
    assert d.root_cause is None
    assert d.findings == []


def test_healthy_and_skips_pass():
    results = [res("qemu.process", "skip"), res("socat.process"), res("stream.ping", "blocked")]
    d = graph.diagnose(results, "socat")
    assert (d.status, d.root_cause, d.findings, d.symptoms) == ("pass", None, [], [])


def test_failure_without_an_id_still_fails_the_diagnosis():
    # A probe that fails without naming a failure id must not turn the run green (exit 0).
    d = graph.diagnose([res("qemu.process"), res("stream.ping", "fail")], "socat")
    assert d.status == "fail"


def test_findings_are_unique_and_root_first():
    results = [
        fail("guest-tcp.connect", "guest-tcp-refused"),
        fail("guest-tcp.ping", "guest-tcp-refused"),
        res("socat.process", "warn", "socat-no-fork"),
        fail("qemu.listener", "qemu-not-listening"),
        fail("unix-socket.accept", "socket-stale"),
        fail("unix-socket.path", "socket-stale"),
    ]
    d = graph.diagnose(results, "socat")
    assert d.root_cause.failure_id == "socket-stale"
    assert d.findings[0] == "socket-stale"
    assert len(d.findings) == len(set(d.findings))
    assert set(d.findings) == {"guest-tcp-refused", "socat-no-fork", "qemu-not-listening", "socket-stale"}


def test_explains_cycle_still_names_a_root():
    # socat-port-conflict explains qemu-bind-failed (EXPLAINS), qemu-bind-failed explains
    # socket-permission (qemu is below unix-socket), socket-permission explains
    # socat-port-conflict (unix-socket is below socat): a cycle. A failing run still needs a root.
    results = [
        fail("socat.port", "socat-port-conflict"),
        fail("qemu.log", "qemu-bind-failed", "qemu"),
        fail("unix-socket.accept", "socket-permission"),
    ]
    d = graph.diagnose(results, "socat")
    assert d.status == "fail"
    assert d.root_cause is not None
    assert d.root_cause.failure_id in {"socat-port-conflict", "qemu-bind-failed", "socket-permission"}


def test_relative_socat_target_beats_the_missing_socket_it_causes():
    # socat resolved a relative UNIX-CONNECT against its own cwd: "the socket is missing"
    # there, and QEMU "does not listen" there, both because socat looks in the wrong place.
    results = [
        res("qemu.process"),
        fail("socat.target", "socat-wrong-target"),
        fail("unix-socket.path", "socket-missing"),
        fail("qemu.listener", "qemu-not-listening"),
        fail("guest-tcp.ping", "guest-closed"),
    ]
    d = graph.diagnose(results, "socat")
    assert d.root_cause.failure_id == "socat-wrong-target"
    assert symptom_ids(d) == {"socket-missing", "qemu-not-listening", "guest-closed"}


def test_every_explains_entry_uses_catalog_ids():
    for cause, effects in graph.EXPLAINS.items():
        assert cause in CATALOG
        assert effects <= set(CATALOG), effects - set(CATALOG)
    for topology, layers in graph.DEPENDS_ON.items():
        assert set(layers) == set(LAYER_NAMES), topology
        for needs in layers.values():
            assert set(needs) <= set(LAYER_NAMES)


# -- property: any mix of results over the real ids and layers

STATUSES = [s.value for s in Status]
FAILURE_IDS = sorted(CATALOG)

result_st = st.builds(
    lambda layer, status, fid, use_catalog_layer: (layer, status, fid, use_catalog_layer),
    st.sampled_from(LAYER_NAMES), st.sampled_from(STATUSES),
    st.one_of(st.none(), st.sampled_from(FAILURE_IDS)), st.booleans(),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.lists(result_st, max_size=14), topology=st.sampled_from(["socat", "tcp", "unknown", "other"]))
def test_diagnose_properties(raw, topology):
    results = []
    for i, (layer, status, fid, use_catalog_layer) in enumerate(raw):
        if use_catalog_layer and fid is not None:
            layer = CATALOG[fid].layer
        results.append(res(f"{layer}.p{i}", status, fid, layer))
    d = graph.diagnose(results, topology)

    failing = [r for r in results if r.status == Status.FAIL and r.failure_id]
    warning = [r for r in results if r.status == Status.WARN and r.failure_id]
    assert d.status in ("pass", "warn", "fail")
    assert len(d.findings) == len(set(d.findings))
    assert {r.failure_id for r in failing} <= set(d.findings)
    assert {r.failure_id for r in warning} <= set(d.findings)
    assert set(d.findings) <= {r.failure_id for r in failing + warning}
    if d.root_cause is not None:
        assert any((r.id, r.failure_id, r.layer) == (d.root_cause.probe, d.root_cause.failure_id,
                                                      d.root_cause.layer) for r in failing)
        assert d.findings[0] == d.root_cause.failure_id
        for s in d.symptoms:
            assert any((r.id, r.failure_id) == (s["probe"], s["failure_id"]) for r in failing)
            assert s["probe"] != d.root_cause.probe
    else:
        assert d.symptoms == []
    if failing:
        assert d.status == "fail"
        assert d.root_cause is not None, "a failing run must name a root cause"
    if any(r.status in (Status.FAIL, Status.ERROR) for r in results):
        assert d.status == "fail"
    elif warning:
        assert d.status == "warn"
    else:
        assert d.status == "pass"
