"""helixdiag.pipeline (parse + lint) and `helixdiag lint`.

The pipelines of PIPELINES.md §2 are pasted verbatim with their placeholders and filled
in here; the history (§4) and doc (§6) pipelines give the failing cases. Corrected
pipelines are checked twice: they lint clean, and (with vsockenc/pipewiresrc swapped for
elements that exist here) real GStreamer runs them to EOS.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import require_tool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixdiag.cli import cli, cmd_lint, main
from helixdiag.errors import EXIT_USAGE, UsageError
from helixdiag.failures import CATALOG, Severity
from helixdiag.pipeline import (
    Caps,
    Element,
    LintResult,
    PipelineSyntaxError,
    check_elements,
    lint,
    parse,
    vsockenc_endpoint,
    vsockenc_properties,
)
from helixdiag.pipeline.rules import RULES as LINT_RULES
from helixdiag.protocol import PixelFormat, frame_layout

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parent.parent

if "lint" not in cli.commands:
    cli.add_command(cmd_lint.command)


# ── PIPELINES.md §2, verbatim ─────────────────────────────────────────────────────────

P21 = """pipewiresrc path={node} do-timestamp=true keepalive-time=500[ fd={fd}]
 ! videoconvert
 ! video/x-raw,format=NV12
 ! queue max-size-buffers=1 leaky=downstream
 ! vsockenc tcp-host=10.0.2.2 tcp-port={port} bitrate={kbps} keyframe-interval={gop}
 ! h264parse
 ! video/x-h264,stream-format=byte-stream
 ! h264parse config-interval=-1
 ! video/x-h264,stream-format=byte-stream,alignment=au
 ! appsink name=videosink emit-signals=true max-buffers=2 drop=true sync=false"""

P21_CONCRETE = "pipewiresrc path=47 do-timestamp=true keepalive-time=500 ! videoconvert ! video/x-raw,format=NV12 ! queue max-size-buffers=1 leaky=downstream ! vsockenc tcp-host=10.0.2.2 tcp-port=15937 bitrate=10000 keyframe-interval=120 ! h264parse ! video/x-h264,stream-format=byte-stream ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink emit-signals=true max-buffers=2 drop=true sync=false"

P22 = "pipewiresrc path={node} do-timestamp=true keepalive-time=500[ fd={fd}] ! videoconvert ! video/x-raw,format=I420 ! queue max-size-buffers=1 leaky=downstream ! openh264enc complexity=low bitrate={kbps*1000} gop-size={gop} ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink emit-signals=true max-buffers=2 drop=true sync=false"
P22_X264 = "x264enc pass=qual tune=zerolatency speed-preset=superfast b-adapt=false bframes=0 ref=1 key-int-max={gop} bitrate={kbps} aud=false"

P23 = "pipewiresrc path={node} do-timestamp=true keepalive-time=500[ fd={fd}] ! video/x-raw,format=BGRx,framerate={fps}/1 ! queue max-size-buffers=1 leaky=downstream ! vsockenc tcp-host=10.0.2.2 tcp-port={port} bitrate={kbps} keyframe-interval={gop} ! h264parse ! video/x-h264,stream-format=byte-stream ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink emit-signals=true max-buffers=2 drop=true sync=false"

P24_HEAD = "pipewiresrc path={node} do-timestamp=true keepalive-time=500[ fd={fd}] ! video/x-raw,framerate={fps}/1 ! queue max-size-buffers=1 leaky=downstream ! vsockenc …"
TAIL_23 = P23[P23.index(" ! vsockenc") :]
P24 = P24_HEAD.replace(" ! vsockenc …", TAIL_23)  # "(same tail as 2.3)"

# §6, the suggested probe, pasted as the shell command it is.
PROBE_COMMAND = r"""GST_DEBUG=vsockenc:5 gst-launch-1.0 -e videotestsrc is-live=true num-buffers=300 \
  ! video/x-raw,format=NV12,width=640,height=360,framerate=30/1 \
  ! queue max-size-buffers=1 leaky=downstream \
  ! vsockenc tcp-host=10.0.2.2 tcp-port=15937 keyframe-interval=60 \
  ! h264parse ! video/x-h264,stream-format=byte-stream,alignment=au ! fakesink sync=false"""


def fill(template: str, *, fd: int | None = None, node: int = 47, port: int = 15937, kbps: int = 10000,
         gop: int = 120, fps: int = 30) -> str:
    text = template.replace("[ fd={fd}]", f" fd={fd}" if fd else "")
    return (text.replace("{node}", str(node)).replace("{port}", str(port)).replace("{kbps*1000}", str(kbps * 1000))
            .replace("{kbps}", str(kbps)).replace("{gop}", str(gop)).replace("{fps}", str(fps)))


def ids(result: LintResult) -> Counter:
    return Counter(result.failure_ids)


@pytest.mark.parametrize("fd", [None, 31])
def test_head_vsockenc_pipeline_lints_clean(fd):
    result = lint(fill(P21, fd=fd))
    assert result.findings == [] and result.status == "pass"
    assert result.corrected is None
    assert not any("vsockenc is absent" in n for n in result.notes)


def test_head_concrete_example_matches_the_template_and_lints_clean():
    assert parse(fill(P21)).render() == P21_CONCRETE
    result = lint(P21_CONCRETE, host="10.0.2.2", port=15937)
    assert result.findings == [] and result.corrected is None


@pytest.mark.parametrize("encoder", ["openh264", "x264"])
def test_software_encoder_pipelines_lint_clean_and_say_vsockenc_is_absent(encoder):
    text = fill(P22)
    if encoder == "x264":
        text = text.replace(text[text.index("openh264enc") : text.index(" ! h264parse")], fill(P22_X264))
    result = lint(text, port=41937)  # --port cannot apply without vsockenc
    assert result.findings == [] and result.corrected is None
    assert any("vsockenc is absent" in n for n in result.notes)
    assert result.vsockenc is None


@pytest.mark.parametrize("fd", [None, 31])
def test_shm_mode_reports_bandwidth_framerate_and_missing_convert(fd):
    text = fill(P23, fd=fd)
    result = lint(text)
    assert ids(result) == Counter({"gst-pipeline-order": 2, "gst-bgra-bandwidth": 1})
    assert result.status == "fail"
    order = [f for f in result.findings if f.failure_id == "gst-pipeline-order"]
    assert {f.evidence["element_index"] for f in order} == {0, 1}  # pipewiresrc (no convert), the caps (framerate)
    assert any(f.evidence.get("framerate") == "30/1" for f in order)
    assert any("no videoconvert" in f.message for f in order)
    bw = next(f for f in result.findings if f.failure_id == "gst-bgra-bandwidth")
    assert bw.severity == "warn"
    assert bw.evidence["element"] == "video/x-raw,format=BGRx,framerate=30/1"
    assert bw.evidence["bytes_per_frame"] == frame_layout(PixelFormat.BGRA8888, 1920, 1080).size == 8_294_400
    assert bw.evidence["nv12_bytes_per_frame"] == frame_layout(PixelFormat.NV12, 1920, 1080).size == 3_110_400
    assert bw.evidence["size"] == "1920x1080" and "default" in bw.evidence["size_from"]
    assert "8 294 400" in bw.message and "3 110 400" in bw.message
    # The mechanical fix turns 2.3 into exactly what HEAD builds (2.1).
    assert result.corrected == parse(fill(P21, fd=fd)).render()
    assert lint(result.corrected).findings == []


def test_native_mode_reports_framerate_missing_convert_and_unpinned_format():
    result = lint(fill(P24))
    assert ids(result) == Counter({"gst-pipeline-order": 2, "gst-bgra-bandwidth": 1})
    bw = next(f for f in result.findings if f.failure_id == "gst-bgra-bandwidth")
    assert bw.evidence["format"] is None and bw.evidence["assumed_format"] == "BGRx"
    assert bw.evidence["element"].startswith("vsockenc ")
    assert result.corrected == P21_CONCRETE


def test_the_suggested_probe_command_line_lints_clean():
    result = lint(PROBE_COMMAND)
    assert result.findings == []
    assert any("gst-launch-1.0 command line" in n for n in result.notes)
    p = parse(PROBE_COMMAND)
    assert p.command_line
    assert [e.factory for e in p.elements] == ["videotestsrc", "queue", "vsockenc", "h264parse", "fakesink"]
    assert vsockenc_properties(p)["keyframe-interval"] == 60


# ── every rule: a failing and a passing pipeline ──────────────────────────────────────

GOOD_HEAD = "pipewiresrc path=47 do-timestamp=true keepalive-time=500 ! videoconvert ! video/x-raw,format=NV12"
GOOD_TAIL = ("! h264parse ! video/x-h264,stream-format=byte-stream ! h264parse config-interval=-1 "
             "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink sync=false")
QUEUE = "queue max-size-buffers=1 leaky=downstream"
ENC = "vsockenc tcp-host=10.0.2.2 tcp-port=15937 keyframe-interval=120"


def vs(head: str = GOOD_HEAD, queue: str = QUEUE, enc: str = ENC, tail: str = GOOD_TAIL) -> str:
    return f"{head} ! {queue} ! {enc} {tail}"


# (rule id, failing pipeline, passing pipeline, lint kwargs, expected count in the failing one)
RULES = [
    # FAILURES.md #4 / history 7d8db571d: convert + scale after the leaky queue
    ("gst-pipeline-order",
     f"pipewiresrc path=47 ! {QUEUE} ! videoconvert ! videoscale ! video/x-raw,format=NV12,width=960,height=540 ! {ENC} {GOOD_TAIL}",
     f"pipewiresrc path=47 ! videoscale ! video/x-raw,width=960,height=540 ! videoconvert ! video/x-raw,format=NV12,width=960,height=540 ! {QUEUE} ! {ENC} {GOOD_TAIL}",
     {}, 2),
    # FAILURES.md #5 / ef7639054: videorate + framerate caps
    ("gst-pipeline-order",
     vs(head=f"{GOOD_HEAD} ! videorate skip-to-first=true max-rate=30 ! video/x-raw,framerate=30/1"),
     vs(), {}, 2),
    # videorate anywhere in the vsockenc branch, even with a synthetic source
    ("gst-pipeline-order",
     vs(head="videotestsrc ! videorate ! video/x-raw,format=NV12,framerate=30/1"),
     vs(head="videotestsrc ! video/x-raw,format=NV12,framerate=30/1"), {}, 1),
    # PIPELINES.md §5.6: a fixed framerate caps on pipewiresrc (0/1 = variable is fine)
    ("gst-pipeline-order",
     vs(head=f"{GOOD_HEAD},framerate=60/1"),
     vs(head=f"{GOOD_HEAD},framerate=0/1"), {}, 1),
    # PIPELINES.md §5.1 / history 4b1da106f: no videoconvert after pipewiresrc
    ("gst-pipeline-order",
     vs(head="pipewiresrc path=47 ! video/x-raw,format=NV12"),
     vs(), {}, 1),
    # non-vsockenc pipelines: what applies is still linted
    ("gst-pipeline-order",
     "pipewiresrc ! queue max-size-buffers=1 leaky=downstream ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency ! fakesink",
     "pipewiresrc ! videoconvert ! video/x-raw,format=I420 ! queue max-size-buffers=1 leaky=downstream ! x264enc tune=zerolatency ! fakesink",
     {}, 1),
    # FAILURES.md #6 / 19df4be73
    ("gst-profile-caps",
     vs(tail=GOOD_TAIL.replace("video/x-h264,stream-format=byte-stream !", "video/x-h264,profile=constrained-baseline,stream-format=byte-stream !", 1)),
     vs(), {}, 1),
    # FAILURES.md #8: BGRx/BGRA/RGBx/RGBA into vsockenc
    ("gst-bgra-bandwidth", vs(head="pipewiresrc ! videoconvert ! video/x-raw,format=BGRA"), vs(), {}, 1),
    ("gst-bgra-bandwidth", vs(head="pipewiresrc ! videoconvert ! video/x-raw,format=(string)RGBx"), vs(), {}, 1),
    ("gst-bgra-bandwidth", vs(head="pipewiresrc ! videoconvert ! video/x-raw,format=RGBA,width=1280,height=720"), vs(), {}, 1),
    ("gst-bgra-bandwidth", vs(head="pipewiresrc ! videoconvert"), vs(), {}, 1),  # not pinned at all
    # FAILURES.md #21: only when --port/--host are given
    ("port-mismatch", vs(enc="vsockenc tcp-host=10.0.2.2 tcp-port=5900"), vs(enc="vsockenc tcp-host=10.0.2.2 tcp-port=41937"),
     {"port": 41937}, 1),
    ("port-mismatch", vs(enc="vsockenc tcp-host=10.0.2.2"), vs(enc="vsockenc tcp-host=10.0.2.2"), {"port": 15937, "host": "10.0.2.2"}, 0),
    ("port-mismatch", vs(enc="vsockenc tcp-host=10.0.2.15 tcp-port=15937"), vs(), {"host": "10.0.2.2"}, 1),
    ("port-mismatch", vs(enc="vsockenc socket-path=/tmp/helix-vsock.sock"), vs(), {"port": 15937}, 1),
    # PIPELINES.md §3 + 90f34f609: no transport, or a host name
    ("vsockenc-connect-failed", vs(enc="vsockenc bitrate=10000 keyframe-interval=120"), vs(), {}, 1),
    ("vsockenc-connect-failed", vs(enc="vsockenc tcp-host=localhost tcp-port=15937"), vs(), {}, 1),
    # PIPELINES.md §5.5 / FAILURES.md #3
    ("pipewire-static-stall", vs(head=GOOD_HEAD.replace("path=47", "path=47 always-copy=true")), vs(), {}, 1),
    # PIPELINES.md §4 94ac4493b
    ("pipewire-shm-buffers",
     vs(head="pipewirezerocopysrc pipewire-node-id=47 capture-source=pipewire buffer-type=dmabuf-passthrough keepalive-time=500 pipewire-fd=9"),
     vs(), {}, 1),
]
FAILING = [r for r in RULES if r[4]]


@pytest.mark.parametrize("rule,failing,passing,kwargs,count", RULES)
def test_rule_fails_and_passes(rule, failing, passing, kwargs, count):
    bad = lint(failing, **kwargs)
    assert ids(bad)[rule] == count, [f.message for f in bad.findings]
    good = lint(passing, **kwargs)
    assert rule not in good.failure_ids, [f.message for f in good.findings]
    assert good.findings == []


@pytest.mark.parametrize("rule,failing,passing,kwargs,count", FAILING)
def test_corrected_pipeline_of_each_failing_case_lints_clean(rule, failing, passing, kwargs, count):
    result = lint(failing, **kwargs)
    assert result.corrected is not None
    again = lint(result.corrected, **kwargs)
    assert again.findings == [], [f.message for f in again.findings]
    assert again.corrected is None


@pytest.mark.parametrize("rule,failing,passing,kwargs,count", FAILING)
def test_every_finding_names_the_offending_element(rule, failing, passing, kwargs, count):
    result = lint(failing, **kwargs)
    p = parse(failing)
    for f in result.findings:
        assert f.failure_id in CATALOG
        i = f.evidence["element_index"]
        assert isinstance(i, int) and p.nodes[i].text == f.evidence["element"]
        assert failing[f.evidence["position"] :].startswith(f.evidence["element"].split()[0])
        assert f.evidence["rule"]  # the section it comes from


@pytest.mark.parametrize("rule,failing,passing,kwargs,count", FAILING)
def test_every_finding_names_its_rule_and_a_source_users_can_open(rule, failing, passing, kwargs, count):
    for f in lint(failing, **kwargs).findings:
        r = LINT_RULES[f.evidence["rule"]]
        assert r.failure_id == f.failure_id and f.evidence["rule_statement"] == r.statement
        source = f.evidence["source"]
        assert source == r.source
        assert source.startswith("https://") or (REPO / source.split("#")[0]).is_file(), source


def test_every_rule_is_exercised_and_reports_its_own_id():
    seen = {f.evidence["rule"] for r in FAILING for f in lint(r[1], **r[3]).findings}
    assert seen | {"vsockenc-installed"} == set(LINT_RULES)  # that one needs --check (below)
    for name, r in LINT_RULES.items():
        assert r.name == name and r.failure_id in CATALOG and r.statement and r.source


# Caps that only pin what a fix removes: the fix must not leave the bare media type behind.
BARE_AFTER_FIX = [
    ("pipewiresrc path=47 ! video/x-raw,framerate=30/1 ! videoconvert ! video/x-raw,format=NV12 ! "
     f"{QUEUE} ! {ENC} {GOOD_TAIL}", "video/x-raw !"),
    (vs(tail="! h264parse ! video/x-h264,profile=main ! h264parse config-interval=-1 "
             "! video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=videosink sync=false"),
     "video/x-h264 !"),
    ("pipewiresrc ! video/x-raw,framerate=60/1 ! videoconvert ! x264enc ! fakesink", "video/x-raw !"),
]


@pytest.mark.parametrize("failing,bare", BARE_AFTER_FIX)
def test_corrections_never_leave_an_empty_caps_filter(failing, bare):
    result = lint(failing)
    assert result.corrected is not None
    assert f"! {bare}" not in result.corrected, result.corrected
    assert not any(isinstance(n, Caps) and n.bare for n in parse(result.corrected).nodes), result.corrected
    assert lint(result.corrected).findings == []


def test_the_bytes_ratio_is_one_figure_wherever_it_is_printed():
    expected = round(frame_layout(PixelFormat.BGRA8888, 1920, 1080).size
                     / frame_layout(PixelFormat.NV12, 1920, 1080).size, 2)
    (bw,) = lint(vs(head="pipewiresrc ! videoconvert ! video/x-raw,format=BGRx")).findings
    printed = {
        "lint message": bw.message,
        "lint rule": LINT_RULES[bw.evidence["rule"]].statement,
        "catalog remedy": CATALOG["gst-bgra-bandwidth"].remedy,
        "explain page": (REPO / "docs" / "failures" / "gst-bgra-bandwidth.md").read_text(encoding="utf-8"),
        "protocol page": (REPO / "docs" / "protocol.md").read_text(encoding="utf-8"),
    }
    for where, text in printed.items():
        ratios = set(re.findall(r"(\d+\.\d+)×", text))
        assert ratios == {f"{expected:.2f}"}, (where, ratios)
    assert bw.evidence["ratio"] == expected


def test_the_corrected_order_puts_conversion_before_the_queue():
    result = lint(FAILING[0][1])
    p = parse(result.corrected)
    order = [n.factory if isinstance(n, Element) else "caps" for n in p.nodes]
    assert order[:6] == ["pipewiresrc", "videoconvert", "videoscale", "caps", "queue", "vsockenc"]
    assert p.nodes[3].text == "video/x-raw,format=NV12,width=960,height=540"


def test_bandwidth_uses_the_caps_size_and_protocol_frame_layout():
    result = lint(vs(head="pipewiresrc ! videoconvert ! videoscale ! video/x-raw,format=BGRA,width=960,height=540"))
    (bw,) = result.findings
    assert bw.evidence["size"] == "960x540" and "default" not in bw.evidence["size_from"]
    assert bw.evidence["bytes_per_frame"] == frame_layout(PixelFormat.BGRA8888, 960, 540).size == 2_073_600
    assert bw.evidence["nv12_bytes_per_frame"] == frame_layout(PixelFormat.NV12, 960, 540).size == 777_600
    assert bw.evidence["ratio"] == 2.67


def test_port_and_host_are_compared_only_when_given():
    text = vs(enc="vsockenc tcp-host=10.0.2.3 tcp-port=5900")
    assert "port-mismatch" not in lint(text).failure_ids
    assert "port-mismatch" not in lint(text, port=5900).failure_ids
    assert "port-mismatch" not in lint(text, host="10.0.2.3").failure_ids
    assert ids(lint(text, port=15937))["port-mismatch"] == 1
    assert ids(lint(text, host="10.0.2.2"))["port-mismatch"] == 1
    assert ids(lint(text, host="10.0.2.2", port=15937))["port-mismatch"] == 2
    fixed = lint(text, host="10.0.2.2", port=41937).corrected
    assert vsockenc_properties(fixed)["tcp-host"] == "10.0.2.2"
    assert vsockenc_properties(fixed)["tcp-port"] == 41937


def test_absent_tcp_port_means_the_element_default():
    text = vs(enc="vsockenc tcp-host=10.0.2.2")
    assert lint(text, port=15937).findings == []
    (f,) = lint(text, port=41937).findings
    assert f.failure_id == "port-mismatch"
    assert f.evidence["tcp_port"] == 15937 and f.evidence["tcp_port_explicit"] is False
    assert "default 15937" in f.message


def test_bad_host_or_port_arguments_are_usage_errors():
    with pytest.raises(UsageError):
        lint(vs(), host="host.docker.internal")
    with pytest.raises(UsageError):
        lint(vs(), port=70000)


def test_always_copy_without_vsockenc_is_only_a_note():
    result = lint("pipewiresrc always-copy=true ! videoconvert ! x264enc ! fakesink")
    assert result.findings == []
    assert any("always-copy" in n for n in result.notes)


def test_socket_path_without_host_or_port_is_a_note():
    result = lint(vs(enc="vsockenc socket-path=/tmp/helix-vsock.sock"))
    assert result.findings == []
    assert any("socket-path" in n for n in result.notes)


def test_notes_cover_the_advice_rules():
    text = ("pipewiresrc ! videoconvert ! videoscale ! video/x-raw,format=NV12,width=960,height=540 ! queue "
            "! vsockenc tcp-host=10.0.2.2 bogus=1 bitrate=8000 ! h264parse ! fakesink")
    result = lint(text)
    assert result.findings == []
    joined = "\n".join(result.notes)
    for expected in ("not leaky", "up to 200", "scale first", "no property bogus", "never sent",
                     "config-interval=-1", "alignment=au"):
        assert expected in joined, expected


def test_a_missing_link_is_noted():
    result = lint(vs(tail="fakesink"))
    assert any("not linked" in n for n in result.notes)


def test_dmabuf_caps_are_not_reported_as_bandwidth():
    result = lint(vs(head="pipewiresrc ! video/x-raw(memory:DMABuf),format=BGRx"))
    assert result.findings == []
    assert any("DMA-BUF" in n for n in result.notes)


def test_branches_resolve_through_references():
    text = ("pipewiresrc ! tee name=t t. ! queue max-size-buffers=1 leaky=downstream ! videoconvert "
            f"! vsockenc tcp-host=10.0.2.2 {GOOD_TAIL} t. ! queue ! fakesink")
    p = parse(text)
    assert len(p.chains) == 3
    (v,) = p.find("vsockenc")
    assert [n.text for n in p.upstream(v)][:2] == ["pipewiresrc", "tee name=t"]
    result = lint(text)
    assert ids(result) == Counter({"gst-pipeline-order": 1, "gst-bgra-bandwidth": 1})
    fixed = parse(result.corrected)
    assert [n.text for n in fixed.upstream(fixed.find("vsockenc")[0])] == [
        "pipewiresrc", "tee name=t", "videoconvert", "video/x-raw,format=NV12", QUEUE]
    assert lint(result.corrected).findings == []


# ── the parser ────────────────────────────────────────────────────────────────────────


def test_quotes_and_escapes():
    p = parse("""filesrc location='/tmp/a b.h264' ! h264parse ! fakesink name="my sink" """)
    src, _parse, sink = p.elements
    # GStreamer strips only double quotes: single quotes group the token but stay in the value
    # (checked against real GStreamer in test_quoting_means_the_same_to_gstreamer).
    assert src.prop("location") == "'/tmp/a b.h264'" and src.props[0].raw == "'/tmp/a b.h264'"
    assert sink.prop("name") == "my sink"
    assert any("keeps single quotes" in n for n in lint(p.render()).notes)
    # A pasted shell command line is read the way the shell and gst-launch-1.0 read it.
    shell = parse("gst-launch-1.0 filesrc location='/tmp/a b.h264' ! fakesink name='my sink'")
    assert shell.elements[0].prop("location") == "/tmp/a b.h264"
    assert shell.elements[1].prop("name") == "my sink"
    assert parse(r'fakesink name="say \"hi\""').elements[0].prop("name") == 'say "hi"'
    assert parse(r"fakesink name=a\ b").elements[0].prop("name") == "a b"
    assert parse("fakesink name=\"it's\"").elements[0].prop("name") == "it's"
    assert parse("videotestsrc num-buffers = 5 ! fakesink").elements[0].prop("num-buffers") == "5"
    assert parse("fakesink sync_to_clock=false").elements[0].prop("sync-to-clock") == "false"
    again = parse(p.render())
    assert again.render() == p.render()
    assert again.elements[0].prop("location") == "'/tmp/a b.h264'"


def test_caps_typed_values_features_and_lists():
    p = parse("pipewiresrc ! video/x-raw(memory:DMABuf),format=(string)NV12,width=(int)1920,"
              "height=(int)1080,framerate=(fraction)30/1 ! videoconvert ! video/x-raw, format={ NV12, (string)BGRx } "
              "! fakesink")
    caps, listed = [n for n in p.nodes if isinstance(n, Caps)]
    (s,) = caps.structures
    assert (s.media_type, s.features) == ("video/x-raw", "memory:DMABuf") and s.dmabuf
    assert s.get("format") == "NV12" and s.int_field("width") == 1920 and s.int_field("height") == 1080
    assert s.fixed_framerate() == "30/1"
    assert listed.structures[0].formats() == ["NV12", "BGRx"]
    assert listed.text == "video/x-raw, format={ NV12, (string)BGRx }"
    two = parse("videotestsrc ! video/x-raw;video/x-bayer ! fakesink")
    assert [s.media_type for s in two.nodes[1].structures] == ["video/x-raw", "video/x-bayer"]


def test_indices_count_elements_and_caps_in_order():
    p = parse(P21_CONCRETE)
    assert [n.index for n in p.nodes] == list(range(10))
    assert p.nodes[2].text == "video/x-raw,format=NV12" and p.nodes[4].factory == "vsockenc"


def test_vsockenc_properties_and_endpoint():
    props = vsockenc_properties(P21_CONCRETE)
    assert props == {"socket-path": None, "cid": 2, "port": 5000, "tcp-host": "10.0.2.2", "tcp-port": 15937,
                     "bitrate": 10000, "keyframe-interval": 120}
    assert vsockenc_properties(P21_CONCRETE, defaults=False) == {
        "tcp-host": "10.0.2.2", "tcp-port": 15937, "bitrate": 10000, "keyframe-interval": 120}
    assert vsockenc_properties("pipewiresrc ! fakesink") == {}
    assert vsockenc_endpoint(P21_CONCRETE) == ("tcp", "10.0.2.2", 15937)
    assert vsockenc_endpoint("pipewiresrc ! vsockenc socket-path=/tmp/s.sock tcp-host=10.0.2.2 ! fakesink") == (
        "unix", "/tmp/s.sock")
    assert vsockenc_endpoint("pipewiresrc ! vsockenc ! fakesink") == ("vsock", 2, 5000)
    assert vsockenc_endpoint("videotestsrc ! fakesink") is None
    assert vsockenc_properties("a ! vsockenc tcp-port=abc ! b")["tcp-port"] == "abc"


SYNTAX_ERRORS = [
    ("", "empty pipeline"),
    ("   \n ", "empty pipeline"),
    ('videotestsrc ! fakesink name="my sink', "unbalanced quote"),
    ("filesrc location='/tmp/a b.h264 ! fakesink", "unbalanced quote"),
    ('videotestsrc ! fakesink name=a"b', "unbalanced quote"),
    ('videotestsrc ! video/x-raw,format="NV12 ! fakesink', "unbalanced quote"),
    ('videotestsrc ! "fakesink"', "quoted string"),
    ("videotestsrc ! ! fakesink", "'!' follows another '!'"),
    ("videotestsrc !", "'!' at the end"),
    ("videotestsrc ! fakesink !  ", "'!' at the end"),
    ("! fakesink", "links from nothing"),
    ("video/x-raw ! fakesink", "not start a chain"),
    ("videotestsrc ! fakesink video/x-raw", "not start a chain"),
    ("videotestsrc ! video/x-raw", "nothing follows"),
    ("videotestsrc ! video/x-raw ! video/x-raw,width=320 ! fakesink", "two caps filters in a row"),
    ("videotestsrc ! video/x-raw,format ! fakesink", "not name=value"),
    ("videotestsrc ! video/x-raw,format= ! fakesink", "has no value"),
    ("videotestsrc ! video/x-raw; foo ! fakesink", "media type"),
    ("videotestsrc ! fakesink sync=", "has no value"),
    ("videotestsrc ! fakesink sync= !", "has no value"),
    ("num-buffers=5 ! fakesink", "does not follow an element"),
    ("videotestsrc ! t.", "no element is named 't'"),
    ("videotestsrc ! tee name=t ! t. ! fakesink", "ends its chain"),
    ("videotestsrc name=a ! fakesink name=a", "two elements are named 'a'"),
    ("t. fakesink", "must be followed by '!'"),
    ("( videotestsrc ! fakesink )", "bins"),
    ("= fakesink", "'=' without a property name"),
    ("videotestsrc ! fakesink = 3", "does not follow an element"),
    ("videotestsrc ! fakesink @preset=x", "unexpected character '@'"),
    ("videotestsrc ! .sink", "pad references"),
    ("gst-launch-1.0 -e videotestsrc ! 'video/x-raw", "cannot split"),
    ("gst-launch-1.0 -e -v", "no pipeline"),
]


@pytest.mark.parametrize("text,problem", SYNTAX_ERRORS)
def test_syntax_errors(text, problem):
    with pytest.raises(PipelineSyntaxError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, UsageError) and err.exit_code == EXIT_USAGE
    assert problem in err.message
    assert "\n" not in err.message and err.message.startswith("pipeline syntax error at character ")
    assert 0 <= err.position <= len(err.text)
    with pytest.raises(PipelineSyntaxError):
        lint(text)


def test_syntax_error_points_at_the_position():
    with pytest.raises(PipelineSyntaxError) as info:
        parse("pipewiresrc ! videoconvert ! ! queue")
    assert info.value.position == 29
    assert "character 30" in info.value.message and ">>!<<" in info.value.message


def test_lone_elements_and_urls_are_valid_syntax():
    p = parse("videotestsrc ! fakesink sync=false extra")
    assert [len(c) for c in p.chains] == [2, 1]
    assert parse("file:///tmp/x.h264 ! h264parse ! fakesink").elements[0].uri


# ── hypothesis: anything in → a result or a syntax error, never a crash ───────────────

VOCAB_ELEMENTS = ["pipewiresrc", "pipewirezerocopysrc", "videotestsrc", "videoconvert", "videoscale", "videorate",
                  "queue", "vsockenc", "h264parse", "appsink", "fakesink", "tee", "x264enc", "videoconvertscale"]
VOCAB_PROPS = ["leaky=downstream", "leaky=upstream", "max-size-buffers=1", "tcp-host=10.0.2.2", "tcp-port=5900",
               "tcp-host=localhost", "socket-path=/tmp/s.sock", "always-copy=true", "name=t", "name=\"my sink\"",
               "config-interval=-1", "bitrate=10000", "buffer-type=dmabuf-passthrough", "location='/tmp/a b'",
               "tcp-port=abc", "tcp-port=99999", "pipewire-node-id=5"]
VOCAB_CAPS = ["video/x-raw,format=BGRx", "video/x-raw,format=NV12", "video/x-raw,framerate=30/1",
              "video/x-raw,format=BGRA,width=960,height=540", "video/x-h264,profile=main",
              "video/x-raw(memory:DMABuf),format=BGRx", "video/x-raw,width=0,height=99999",
              "video/x-raw,format={ NV12, BGRx }", "video/x-raw,format=I420", "video/x-h264,alignment=au"]


@st.composite
def pipeline_like(draw) -> str:
    parts: list[str] = []
    for i in range(draw(st.integers(1, 9))):
        if i:
            parts.append(draw(st.sampled_from([" ! ", " ! ", " ! ", " "])))
            if parts[-1] == " ! " and draw(st.booleans()):
                parts.append(draw(st.sampled_from(VOCAB_CAPS)) + " ! ")
        if draw(st.integers(0, 9)) == 0:
            parts.append("t.")
            continue
        element = draw(st.sampled_from(VOCAB_ELEMENTS))
        props = draw(st.lists(st.sampled_from(VOCAB_PROPS), max_size=3))
        parts.append(" ".join([element, *props]))
    return "".join(parts)


def _check_result(text: str, **kwargs) -> None:
    try:
        result = lint(text, **kwargs)
    except PipelineSyntaxError as exc:
        assert "\n" not in exc.message
        return
    assert isinstance(result, LintResult)
    severities = {f.severity for f in result.findings}
    assert result.status == ("fail" if "fail" in severities else "warn" if "warn" in severities else "pass")
    json.dumps(result.to_dict())
    for f in result.findings:
        assert f.failure_id in CATALOG and "element" in f.evidence and "element_index" in f.evidence
    if result.corrected is not None:
        again = lint(result.corrected, **kwargs)  # valid syntax, and a fixed point
        assert again.corrected is None, (result.corrected, again.corrected)
        fixable_before = {f.failure_id for f in result.findings}
        assert {f.failure_id for f in again.findings} <= fixable_before | {"gst-pipeline-order", "gst-bgra-bandwidth"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_gives_a_result_or_a_syntax_error(text):
    _check_result(text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet="ab!.=\"' \\/,;(){}\n-:xv", max_size=40))
def test_punctuation_soup_gives_a_result_or_a_syntax_error(text):
    _check_result(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline_like(), st.sampled_from([{}, {"port": 41937}, {"host": "10.0.2.2", "port": 15937}]))
def test_pipeline_like_text_lints_and_corrections_are_stable(text, kwargs):
    _check_result(text, **kwargs)
    try:
        p = parse(text)
    except PipelineSyntaxError:
        return
    assert parse(p.render()).render() == p.render()


# ── real GStreamer ────────────────────────────────────────────────────────────────────


def _runnable(pipeline: str) -> list[str]:
    """The corrected pipeline with the parts that need a VM swapped for local elements."""

    def swap(el: Element) -> Element | None:
        if el.factory == "vsockenc":
            return Element.create("x264enc", {"tune": "zerolatency"})
        if el.factory in ("pipewiresrc", "pipewirezerocopysrc"):
            return Element.create("videotestsrc", {"num-buffers": "5"})
        if el.factory == "videotestsrc":
            return el.with_prop("num-buffers", "5")
        if el.factory == "appsink":
            return Element.create("fakesink", {"sync": "false"})
        return None

    return parse(pipeline).substitute(swap).argv()


def _gst_launch(args: list[str], cwd=None) -> subprocess.CompletedProcess:
    gst = require_tool("gst-launch-1.0")
    return subprocess.run([gst, "-q", *args], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL, check=False, cwd=cwd)


@pytest.mark.parametrize("case", [r[1] for r in FAILING] + [fill(P23), fill(P24, fd=5)]
                         + [b[0] for b in BARE_AFTER_FIX])
def test_corrected_pipelines_run_to_eos_in_real_gstreamer(case):
    kwargs = next((r[3] for r in FAILING if r[1] == case), {})
    corrected = lint(case, **kwargs).corrected
    assert corrected is not None
    proc = _gst_launch(_runnable(corrected))
    assert proc.returncode == 0, (corrected, proc.stdout, proc.stderr)


def test_quoting_means_the_same_to_gstreamer(tmp_path):
    double = tmp_path / "a b.raw"
    text = (f"videotestsrc num-buffers=2 ! video/x-raw, format=NV12,width=64,height=48 "
            f"! filesink name=\"my sink\" location=\"{double}\"")
    p = parse(text)
    assert p.elements[-1].prop("location") == str(double)
    proc = _gst_launch(p.argv())
    assert proc.returncode == 0, proc.stderr
    assert double.stat().st_size == 2 * frame_layout(PixelFormat.NV12, 64, 48).size
    # Single quotes stay in the value, for us and for GStreamer: the file is named 'c d.raw'.
    p = parse("videotestsrc num-buffers=1 ! video/x-raw,width=8,height=8 ! filesink location='c d.raw'")
    assert p.elements[-1].prop("location") == "'c d.raw'"
    proc = _gst_launch(p.argv(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "'c d.raw'").is_file() and not (tmp_path / "c d.raw").exists()


def test_check_asks_gstreamer_about_each_element():
    inspect = require_tool("gst-inspect-1.0")
    have_vsockenc = subprocess.run([inspect, "vsockenc"], capture_output=True, timeout=20).returncode == 0
    findings, notes = check_elements(
        "videotestsrc ! videoconvert bogus-prop=1 ! notanelement ! vsockenc tcp-host=10.0.2.2 ! fakesink", timeout=20)
    assert ("vsockenc-missing" in [f.failure_id for f in findings]) == (not have_vsockenc)
    assert any("notanelement" in n for n in notes)
    assert any("bogus-prop" in n for n in notes)
    assert not any("videotestsrc" in n or "fakesink" in n for n in notes)
    result = lint(P21_CONCRETE.replace("appsink", "fakesink").replace(" emit-signals=true max-buffers=2 drop=true", ""),
                  check=True, check_timeout=20)
    assert ("vsockenc-missing" in result.failure_ids) == (not have_vsockenc)


def test_check_without_gst_inspect_is_a_note():
    findings, notes = check_elements("videotestsrc ! fakesink", inspect="no-such-gst-inspect")
    assert findings == [] and "not installed" in notes[0]


# ── the command ───────────────────────────────────────────────────────────────────────


def invoke(*args: str, **kwargs):
    return CliRunner().invoke(cli, ["--no-color", "lint", *args], **kwargs)


def test_cli_clean_pipeline_exits_0():
    result = invoke(P21_CONCRETE)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output


def test_cli_failing_pipeline_prints_id_element_remedy_and_correction():
    result = invoke(fill(P23))
    assert result.exit_code == 1, result.output
    out = result.output
    assert "gst-pipeline-order" in out and "gst-bgra-bandwidth" in out
    assert "element #1 caps, character 60: video/x-raw,format=BGRx,framerate=30/1" in out
    assert CATALOG["gst-bgra-bandwidth"].remedy.split(":")[0] in out
    assert "corrected pipeline:" in out
    assert P21_CONCRETE in out.splitlines()  # one line, unwrapped, ready to copy


def test_cli_each_finding_shows_element_id_message_remedy_and_the_rules_source():
    text = fill(P23).replace("appsink name=videosink", "appsink name=sink0")
    result = invoke(text)
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    findings = lint(text).findings
    assert len(findings) == 3
    for f in findings:
        head = next(i for i, line in enumerate(lines) if f.failure_id in line and f.message[:40] in line)
        block = "\n".join(lines[head:head + 12])
        ev = f.evidence
        what = ev.get("factory", "caps")
        assert f"element #{ev['element_index']} {what}, character {ev['position'] + 1}: {ev['element']}" in block
        assert text[ev["position"]:].startswith(ev["element"])
        assert f"rule: {LINT_RULES[ev['rule']].statement} (source: docs/failures/{f.failure_id}.md)" in block
        assert "remedy: " + f.remedy.split()[0] in block
        assert f"more: helixdiag explain {f.failure_id}" in block
    named = invoke(vs(tail="! h264parse ! video/x-h264,profile=main ! appsink name=sink0"))
    assert "element #6 caps" in named.output
    assert "rule: no profile=" in named.output
    by_name = invoke("pipewiresrc ! videoconvert ! video/x-raw,format=NV12 ! queue max-size-buffers=1 "
                     "leaky=downstream ! vsockenc name=enc0 tcp-host=localhost ! fakesink")
    assert "element #4 vsockenc 'enc0', character " in by_name.output


def test_cli_command_line_findings_give_no_character_offset():
    result = invoke("gst-launch-1.0 -e pipewiresrc ! video/x-raw,format=BGRx ! queue max-size-buffers=1 "
                    "leaky=downstream ! vsockenc tcp-host=10.0.2.2 ! fakesink")
    assert "element #1 caps: video/x-raw,format=BGRx" in result.output
    assert "character" not in result.output.split("corrected pipeline:")[0].replace("character 1", "")


def test_cli_warnings_only_exit_0():
    result = invoke(vs(head="pipewiresrc ! videoconvert ! video/x-raw,format=BGRx"))
    assert result.exit_code == 0, result.output
    assert "WARN" in result.output and "gst-bgra-bandwidth" in result.output
    assert CATALOG["gst-bgra-bandwidth"].severity == Severity.WARN


def test_cli_port_mismatch_only_when_port_given():
    text = vs(enc="vsockenc tcp-host=10.0.2.2 tcp-port=5900")
    assert invoke(text).exit_code == 0
    result = invoke("--port", "15937", text)
    assert result.exit_code == 1 and "port-mismatch" in result.output


def test_cli_reads_stdin_and_writes_json(tmp_path):
    result = invoke("-", "--json", "-", input=fill(P23) + "\n")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)  # stdout carries only the JSON
    assert doc["schema"] == "helixdiag.lint/v1" and doc["status"] == "fail"
    assert Counter(f["failure_id"] for f in doc["findings"]) == Counter({"gst-pipeline-order": 2, "gst-bgra-bandwidth": 1})
    assert doc["corrected"] == P21_CONCRETE and doc["vsockenc"]["tcp-port"] == 15937
    path = tmp_path / "lint.json"
    assert invoke(P21_CONCRETE, "--json", str(path)).exit_code == 0
    assert json.loads(path.read_text())["status"] == "pass"


def test_cli_syntax_error_exits_2_on_one_line():
    result = invoke("pipewiresrc ! ! fakesink")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: pipeline syntax error at character 15")
    assert "Traceback" not in result.output


def test_cli_syntax_error_through_main_exits_2_on_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--no-color", "lint", "videotestsrc name=\"oops ! fakesink"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "unbalanced quote" in err and "Traceback" not in err


def test_cli_rejects_a_host_name():
    result = invoke("--host", "host.docker.internal", P21_CONCRETE)
    assert result.exit_code == 2 and "IPv4" in result.output
