"""Pure H.264 bitstream helpers: NAL splitting, framing detection, SPS parsing.

Used to tell what a hop actually carries (docs/protocol.md): Annex-B with SPS/PPS on
keyframes (H2 onward) or raw AVCC without parameter sets (H0/H1), and which profile,
level and picture size the encoder really signals. Everything here works on bytes that
came off the wire, so every malformed input must end in `H264Error` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from helixdiag.compat import SLOTS, StrEnum

__all__ = [
    "AuSummary",
    "BitReader",
    "Framing",
    "H264Error",
    "Nal",
    "NalType",
    "SpsInfo",
    "access_unit_summary",
    "detect_framing",
    "parse_sps",
    "remove_emulation_prevention",
    "split_annexb",
    "split_avcc",
]


class H264Error(ValueError):
    """Malformed or unsupported H.264 data."""


class NalType(IntEnum):
    """nal_unit_type values (ITU-T H.264 Table 7-1)."""

    UNSPECIFIED = 0
    SLICE = 1  # coded slice of a non-IDR picture
    DPA = 2  # slice data partition A
    DPB = 3
    DPC = 4
    IDR = 5  # coded slice of an IDR picture
    SEI = 6
    SPS = 7
    PPS = 8
    AUD = 9  # access unit delimiter
    END_SEQ = 10
    END_STREAM = 11
    FILLER = 12
    SPS_EXT = 13
    PREFIX = 14  # prefix NAL (SVC/MVC)
    SUBSET_SPS = 15
    DPS = 16  # depth parameter set (3D-AVC)
    AUX_SLICE = 19  # auxiliary coded picture without partitioning
    SLICE_EXT = 20  # SVC/MVC slice extension
    SLICE_EXT_DEPTH = 21


# Types that begin a coded slice; DPB/DPC only continue a slice started by DPA.
_SLICE_TYPES = frozenset({NalType.SLICE, NalType.DPA, NalType.IDR})

_START_CODE = b"\x00\x00\x01"


@dataclass(frozen=True, **SLOTS)
class Nal:
    """One NAL unit; `data` is the whole unit (header byte included) without any
    start code or length prefix, still containing emulation-prevention bytes."""

    type: int
    ref_idc: int
    data: bytes | memoryview

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Nal:
        data = bytes(data)
        if not data:
            raise H264Error("empty NAL unit (no header byte)")
        return cls(type=data[0] & 0x1F, ref_idc=(data[0] >> 5) & 0x03, data=data)

    @property
    def forbidden_zero_bit(self) -> int:
        return self.data[0] >> 7

    @property
    def has_valid_header(self) -> bool:
        # 1..23 are the types the standard assigns or reserves; 0 and 24..31 are
        # "unspecified" and never produced by an encoder, so they betray misframing.
        return self.forbidden_zero_bit == 0 and 1 <= self.type <= 23

    @property
    def type_name(self) -> str:
        try:
            return NalType(self.type).name
        except ValueError:
            return f"TYPE{self.type}"


class Framing(StrEnum):
    ANNEXB = "annexb"
    AVCC = "avcc"
    UNKNOWN = "unknown"


# ---------------------------------------------------------------------------
# Splitting


def split_annexb(buf: bytes | bytearray | memoryview) -> list[Nal]:
    """Split an Annex-B byte stream into NAL units.

    3-byte (00 00 01) and 4-byte (00 00 00 01) start codes may be mixed. Zero bytes
    before a start code (leading_zero_8bits, the extra zero of a 4-byte start code,
    trailing_zero_8bits) belong to no NAL; any other byte before the first start code
    is an error. An empty buffer gives an empty list.
    """
    data = bytes(buf)
    if not data:
        return []
    first = data.find(_START_CODE)
    if first < 0:
        raise H264Error("no Annex-B start code found")
    if data[:first].strip(b"\x00"):
        raise H264Error(f"{first} byte(s) of data before the first start code")

    nals: list[Nal] = []
    pos = first + 3
    while True:
        nxt = data.find(_START_CODE, pos)
        end = len(data) if nxt < 0 else nxt
        # A NAL never ends in 0x00 (rbsp_trailing_bits ends in a 1 bit and
        # cabac_zero_words are escaped to 00 00 03), so trailing zeros are padding.
        payload = data[pos:end].rstrip(b"\x00")
        if not payload:
            raise H264Error(f"empty NAL unit after start code at offset {pos - 3}")
        nals.append(Nal.from_bytes(payload))
        if nxt < 0:
            return nals
        pos = nxt + 3


def split_avcc(buf: bytes | bytearray | memoryview, length_size: int = 4) -> list[Nal]:
    """Split length-prefixed (AVCC / ISO 14496-15) data; lengths are big-endian."""
    if length_size not in (1, 2, 3, 4):
        raise H264Error(f"unsupported AVCC length size {length_size}")
    data = bytes(buf)
    nals: list[Nal] = []
    pos = 0
    while pos < len(data):
        if pos + length_size > len(data):
            raise H264Error(f"truncated {length_size}-byte length prefix at offset {pos}")
        length = int.from_bytes(data[pos : pos + length_size], "big")
        pos += length_size
        if length == 0:
            raise H264Error(f"zero-length NAL unit at offset {pos - length_size}")
        if pos + length > len(data):
            raise H264Error(
                f"NAL length {length} at offset {pos - length_size} overruns the buffer "
                f"({len(data) - pos} byte(s) left)"
            )
        nals.append(Nal.from_bytes(data[pos : pos + length]))
        pos += length
    return nals


def _starts_with_start_code(data: bytes) -> bool:
    # Leading zero bytes are allowed before the first 00 00 01 (leading_zero_8bits).
    stripped = data.lstrip(b"\x00")
    return len(data) - len(stripped) >= 2 and stripped[:1] == b"\x01"


def _valid_split(data: bytes, framing: Framing) -> bool:
    try:
        nals = split_annexb(data) if framing is Framing.ANNEXB else split_avcc(data, 4)
    except H264Error:
        return False
    return bool(nals) and all(nal.has_valid_header for nal in nals)


def detect_framing(buf: bytes | bytearray | memoryview) -> Framing:
    """Guess whether `buf` is Annex-B or AVCC with 4-byte lengths.

    Annex-B wins when the buffer starts with a start code and splits into valid NAL
    headers. The one exception: AVCC whose first NAL is 256..511 bytes long starts
    with 00 00 01 xx, a 3-byte start code, and often also splits "validly" as
    Annex-B. A length chain that lands exactly on the end of the buffer is far
    stronger evidence, so in that case (3-byte start code and exact AVCC chain) AVCC
    wins. A buffer starting 00 00 00 01 stays Annex-B: as AVCC that would be a 1-byte
    NAL, which only end-of-sequence/stream markers are.
    """
    data = bytes(buf)
    if _starts_with_start_code(data) and _valid_split(data, Framing.ANNEXB):
        if data.startswith(_START_CODE) and _valid_split(data, Framing.AVCC):
            return Framing.AVCC
        return Framing.ANNEXB
    if _valid_split(data, Framing.AVCC):
        return Framing.AVCC
    return Framing.UNKNOWN


_EMULATION_PREVENTION = re.compile(b"\x00\x00\x03")


def remove_emulation_prevention(data: bytes | bytearray | memoryview) -> bytes:
    """NAL payload → RBSP: drop the 03 of every 00 00 03.

    Matches are non-overlapping and scanning resumes after the dropped byte, which is
    exactly the decoder rule (the zero count restarts after an emulation byte).
    """
    return _EMULATION_PREVENTION.sub(b"\x00\x00", bytes(data))


# ---------------------------------------------------------------------------
# Bit reading


class BitReader:
    """MSB-first reader over RBSP bytes with Exp-Golomb codes (H.264 §9.1)."""

    # ue(v) values in H.264 fit in 32 bits; more leading zeros means garbage.
    _MAX_LEADING_ZEROS = 31

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        raw = bytes(data)
        self._value = int.from_bytes(raw, "big")
        self._total = len(raw) * 8
        self._pos = 0

    @property
    def bits_left(self) -> int:
        return self._total - self._pos

    def u(self, n: int) -> int:
        """Read n bits as an unsigned integer."""
        if n == 0:
            return 0
        if n > self.bits_left:
            raise H264Error(f"out of bits: need {n}, have {self.bits_left}")
        self._pos += n
        return (self._value >> (self._total - self._pos)) & ((1 << n) - 1)

    def flag(self) -> bool:
        return bool(self.u(1))

    def ue(self) -> int:
        leading_zeros = 0
        while self.u(1) == 0:
            leading_zeros += 1
            if leading_zeros > self._MAX_LEADING_ZEROS:
                raise H264Error("Exp-Golomb code longer than 32 bits")
        return (1 << leading_zeros) - 1 + self.u(leading_zeros)

    def se(self) -> int:
        k = self.ue()
        # 1, 2, 3, 4, ... map to 1, -1, 2, -2, ...
        return (k + 1) // 2 if k % 2 else -(k // 2)


# ---------------------------------------------------------------------------
# SPS


# Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices.
_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})

_PROFILE_NAMES = {
    77: "main",
    88: "extended",
    100: "high",
    110: "high-10",
    122: "high-4:2:2",
    244: "high-4:4:4",
}

# (SubWidthC, SubHeightC) per chroma_format_idc (Table 6-1); 0 is monochrome.
_CHROMA_SUBSAMPLING = {1: (2, 2), 2: (2, 1), 3: (1, 1)}


@dataclass(frozen=True, **SLOTS)
class SpsInfo:
    profile_idc: int
    # The whole byte after profile_idc as it appears in avcC / "avc1.PPCCLL":
    # constraint_set0 is 0x80 ... constraint_set5 is 0x04, low 2 bits reserved.
    constraint_flags: int
    level_idc: int
    profile: str
    level: str
    seq_parameter_set_id: int
    chroma_format_idc: int
    separate_colour_plane: bool
    bit_depth_luma: int
    bit_depth_chroma: int
    qpprime_y_zero_transform_bypass: bool
    seq_scaling_matrix_present: bool
    log2_max_frame_num: int
    pic_order_cnt_type: int
    log2_max_pic_order_cnt_lsb: int | None  # poc type 0 only
    delta_pic_order_always_zero: bool | None  # poc type 1 only
    offset_for_non_ref_pic: int | None
    offset_for_top_to_bottom_field: int | None
    offset_for_ref_frame: tuple[int, ...]
    max_num_ref_frames: int
    gaps_in_frame_num_allowed: bool
    pic_width_in_mbs_minus1: int
    pic_height_in_map_units_minus1: int
    frame_mbs_only: bool
    mb_adaptive_frame_field: bool
    direct_8x8_inference: bool
    frame_cropping: bool
    crop_left: int
    crop_right: int
    crop_top: int
    crop_bottom: int
    vui_parameters_present: bool
    coded_width: int  # before cropping: whole macroblocks
    coded_height: int
    width: int  # after cropping: the displayed picture
    height: int

    def constraint_set(self, n: int) -> bool:
        """constraint_set{n}_flag, n in 0..5."""
        return bool(self.constraint_flags & (0x80 >> n))

    @property
    def codec_string(self) -> str:
        """RFC 6381 codec string, e.g. "avc1.42C01E"."""
        return f"avc1.{self.profile_idc:02X}{self.constraint_flags:02X}{self.level_idc:02X}"


def _profile_name(profile_idc: int, constraint_flags: int) -> str:
    if profile_idc == 66:
        return "constrained-baseline" if constraint_flags & 0x40 else "baseline"
    return _PROFILE_NAMES.get(profile_idc, f"profile-{profile_idc}")


def _level_name(profile_idc: int, constraint_flags: int, level_idc: int) -> str:
    # Level 1b: level_idc 9 in the high profiles, or 11 + constraint_set3 in
    # baseline/main/extended (where 11 + set3 would otherwise read as 1.1).
    if level_idc == 9 or (level_idc == 11 and profile_idc in (66, 77, 88) and constraint_flags & 0x10):
        return "1b"
    return f"{level_idc // 10}.{level_idc % 10}"


def _skip_scaling_list(r: BitReader, size: int) -> None:
    # scaling_list() (§7.3.2.1.1.1): deltas stop once next_scale hits 0.
    last_scale = next_scale = 8
    for _ in range(size):
        if next_scale != 0:
            delta = r.se()
            if not -128 <= delta <= 127:
                raise H264Error(f"delta_scale {delta} out of range")
            next_scale = (last_scale + delta + 256) % 256
        last_scale = next_scale or last_scale


def _ue_in(r: BitReader, name: str, lo: int, hi: int) -> int:
    value = r.ue()
    if not lo <= value <= hi:
        raise H264Error(f"{name} = {value} out of range {lo}..{hi}")
    return value


def parse_sps(nal: Nal | bytes | bytearray | memoryview) -> SpsInfo:
    """Parse a sequence parameter set.

    Takes a `Nal` or the NAL unit bytes *including* the one-byte NAL header (what
    `Nal.data` holds), still with emulation-prevention bytes. VUI is not parsed.
    """
    data = bytes(nal.data) if isinstance(nal, Nal) else bytes(nal)
    if not data:
        raise H264Error("empty SPS NAL unit")
    if data[0] & 0x80:
        raise H264Error("forbidden_zero_bit set in SPS NAL header")
    if data[0] & 0x1F != NalType.SPS:
        raise H264Error(f"not an SPS: NAL type {data[0] & 0x1F}")

    r = BitReader(remove_emulation_prevention(data[1:]))
    profile_idc = r.u(8)
    constraint_flags = r.u(8)
    level_idc = r.u(8)
    sps_id = _ue_in(r, "seq_parameter_set_id", 0, 31)

    chroma_format_idc = 1  # inferred 4:2:0 when absent
    separate_colour_plane = False
    bit_depth_luma = bit_depth_chroma = 8
    qpprime_bypass = False
    scaling_matrix_present = False
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = _ue_in(r, "chroma_format_idc", 0, 3)
        if chroma_format_idc == 3:
            separate_colour_plane = r.flag()
        bit_depth_luma = 8 + _ue_in(r, "bit_depth_luma_minus8", 0, 6)
        bit_depth_chroma = 8 + _ue_in(r, "bit_depth_chroma_minus8", 0, 6)
        qpprime_bypass = r.flag()
        scaling_matrix_present = r.flag()
        if scaling_matrix_present:
            # Six 4x4 lists, then two 8x8 lists (six with 4:4:4 chroma).
            for i in range(12 if chroma_format_idc == 3 else 8):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)

    log2_max_frame_num = 4 + _ue_in(r, "log2_max_frame_num_minus4", 0, 12)
    poc_type = _ue_in(r, "pic_order_cnt_type", 0, 2)
    log2_max_poc_lsb = None
    delta_always_zero = None
    offset_non_ref = offset_top_bottom = None
    offset_for_ref_frame: tuple[int, ...] = ()
    if poc_type == 0:
        log2_max_poc_lsb = 4 + _ue_in(r, "log2_max_pic_order_cnt_lsb_minus4", 0, 12)
    elif poc_type == 1:
        delta_always_zero = r.flag()
        offset_non_ref = r.se()
        offset_top_bottom = r.se()
        cycle = _ue_in(r, "num_ref_frames_in_pic_order_cnt_cycle", 0, 255)
        offset_for_ref_frame = tuple(r.se() for _ in range(cycle))

    max_num_ref_frames = r.ue()
    gaps_allowed = r.flag()
    width_mbs_minus1 = r.ue()
    height_map_units_minus1 = r.ue()
    frame_mbs_only = r.flag()
    mb_adaptive = r.flag() if not frame_mbs_only else False
    direct_8x8 = r.flag()
    frame_cropping = r.flag()
    crop = (r.ue(), r.ue(), r.ue(), r.ue()) if frame_cropping else (0, 0, 0, 0)
    vui_present = r.flag()

    # Picture size (§7.4.2.1.1): field-coded streams count map units in field pairs.
    coded_width = 16 * (width_mbs_minus1 + 1)
    coded_height = 16 * (2 - frame_mbs_only) * (height_map_units_minus1 + 1)
    chroma_array_type = 0 if separate_colour_plane else chroma_format_idc
    if chroma_array_type == 0:
        crop_unit_x, crop_unit_y = 1, 2 - frame_mbs_only
    else:
        sub_w, sub_h = _CHROMA_SUBSAMPLING[chroma_array_type]
        crop_unit_x, crop_unit_y = sub_w, sub_h * (2 - frame_mbs_only)
    left, right, top, bottom = crop
    width = coded_width - crop_unit_x * (left + right)
    height = coded_height - crop_unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise H264Error(
            f"cropping ({left},{right},{top},{bottom}) leaves no picture of "
            f"{coded_width}x{coded_height}"
        )

    return SpsInfo(
        profile_idc=profile_idc,
        constraint_flags=constraint_flags,
        level_idc=level_idc,
        profile=_profile_name(profile_idc, constraint_flags),
        level=_level_name(profile_idc, constraint_flags, level_idc),
        seq_parameter_set_id=sps_id,
        chroma_format_idc=chroma_format_idc,
        separate_colour_plane=separate_colour_plane,
        bit_depth_luma=bit_depth_luma,
        bit_depth_chroma=bit_depth_chroma,
        qpprime_y_zero_transform_bypass=qpprime_bypass,
        seq_scaling_matrix_present=scaling_matrix_present,
        log2_max_frame_num=log2_max_frame_num,
        pic_order_cnt_type=poc_type,
        log2_max_pic_order_cnt_lsb=log2_max_poc_lsb,
        delta_pic_order_always_zero=delta_always_zero,
        offset_for_non_ref_pic=offset_non_ref,
        offset_for_top_to_bottom_field=offset_top_bottom,
        offset_for_ref_frame=offset_for_ref_frame,
        max_num_ref_frames=max_num_ref_frames,
        gaps_in_frame_num_allowed=gaps_allowed,
        pic_width_in_mbs_minus1=width_mbs_minus1,
        pic_height_in_map_units_minus1=height_map_units_minus1,
        frame_mbs_only=frame_mbs_only,
        mb_adaptive_frame_field=mb_adaptive,
        direct_8x8_inference=direct_8x8,
        frame_cropping=frame_cropping,
        crop_left=left,
        crop_right=right,
        crop_top=top,
        crop_bottom=bottom,
        vui_parameters_present=vui_present,
        coded_width=coded_width,
        coded_height=coded_height,
        width=width,
        height=height,
    )


# ---------------------------------------------------------------------------
# Access units


@dataclass(frozen=True, **SLOTS)
class AuSummary:
    nal_types: tuple[int, ...]
    has_sps: bool
    has_pps: bool
    has_idr: bool
    slice_count: int  # coded slices: non-IDR, IDR and data partition A
    sps: SpsInfo | None  # the first SPS, if present and parseable
    sps_error: str | None  # why the first SPS did not parse
    # True only if there is an IDR slice and both an SPS and a PPS precede the first
    # one: what a decoder joining at this access unit needs (docs/protocol.md).
    params_before_idr: bool


def access_unit_summary(nals: Iterable[Nal]) -> AuSummary:
    """Summarise the NAL units of one access unit. Never raises H264Error: an SPS that
    does not parse is reported in `sps_error`."""
    nals = list(nals)
    types = tuple(nal.type for nal in nals)
    first_idr = types.index(NalType.IDR) if NalType.IDR in types else None
    before_idr = set(types[:first_idr]) if first_idr is not None else set()

    sps = None
    sps_error = None
    first_sps = next((nal for nal in nals if nal.type == NalType.SPS), None)
    if first_sps is not None:
        try:
            sps = parse_sps(first_sps)
        except H264Error as exc:
            sps_error = str(exc)

    return AuSummary(
        nal_types=types,
        has_sps=NalType.SPS in types,
        has_pps=NalType.PPS in types,
        has_idr=first_idr is not None,
        slice_count=sum(t in _SLICE_TYPES for t in types),
        sps=sps,
        sps_error=sps_error,
        params_before_idr=first_idr is not None and {NalType.SPS, NalType.PPS} <= before_idr,
    )


# ----------------------------------------------------------------------------- rewriting
# Used by `serve --fault` to produce what the early hosts sent (docs/protocol.md).

START_CODE = b"\x00\x00\x00\x01"


def join_annexb(nals: Iterable[Nal]) -> bytes:
    """NAL units back into one Annex-B buffer with 4-byte start codes."""
    return b"".join(START_CODE + bytes(n.data) for n in nals)


def strip_parameter_sets(au: bytes) -> bytes:
    """The access unit without SPS/PPS: what the H0/H1 host sent on keyframes."""
    return join_annexb(n for n in split_annexb(au) if n.type not in (NalType.SPS, NalType.PPS))


def annexb_to_avcc(au: bytes, length_size: int = 4) -> bytes:
    """Annex-B → length-prefixed (AVCC), as VideoToolbox's raw buffers are."""
    out = bytearray()
    for nal in split_annexb(au):
        data = bytes(nal.data)
        out += len(data).to_bytes(length_size, "big") + data
    return bytes(out)
