"""The one reader of /proc/cpuinfo: the first CPU's named field, keys matched whole."""

from __future__ import annotations

from pathlib import Path

from components.machine import cpuinfo_field

CPUINFO_TEXT = (
    "processor\t: 0\n"
    "vendor_id\t: AuthenticAMD\n"
    "model name\t: AMD EPYC 9R14\n"
    "flags\t\t: fpu avx2 avx512_bf16\n"
    "vmx flags\t: ept\n"
    "bugs\t\t:\n"
    "\n"
    "processor\t: 1\n"
    "vendor_id\t: GenuineIntel\n"
    "flags\t\t: fpu\n"
)


def test_the_first_cpus_field_is_read_with_its_key_matched_whole(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(CPUINFO_TEXT)
    assert cpuinfo_field("vendor_id", cpuinfo) == "AuthenticAMD"
    assert cpuinfo_field("model name", cpuinfo) == "AMD EPYC 9R14"
    assert cpuinfo_field("flags", cpuinfo) == "fpu avx2 avx512_bf16"
    assert cpuinfo_field("vmx flags", cpuinfo) == "ept"
    assert cpuinfo_field("bugs", cpuinfo) == ""          # present and empty
    assert cpuinfo_field("model", cpuinfo) is None       # "model name" is another key
    assert cpuinfo_field("microcode", cpuinfo) is None   # absent


def test_no_cpuinfo_reads_as_no_field(tmp_path: Path) -> None:
    assert cpuinfo_field("flags", tmp_path / "missing") is None
