"""The one reader of /proc/cpuinfo: the first CPU's named field, keys matched whole."""

from __future__ import annotations

from pathlib import Path

from components.machine import cpu_generation, cpu_vector_isa, cpuinfo_field

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
    assert cpu_generation(tmp_path / "missing") is None
    assert cpu_vector_isa(tmp_path / "missing") is None


def _cpuinfo(tmp_path: Path, fields: str) -> Path:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n" + fields)
    return cpuinfo


def test_the_generation_tells_apart_cpus_that_share_a_name(tmp_path: Path) -> None:
    zen1 = _cpuinfo(tmp_path, "cpu family\t: 23\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n")
    assert cpu_generation(zen1) == "family 23 model 1"
    assert cpu_generation(_cpuinfo(tmp_path, "model name\t: AMD EPYC\n")) is None


def test_the_vector_isa_is_the_widest_level_the_flags_offer(tmp_path: Path) -> None:
    avx512 = _cpuinfo(tmp_path, "flags\t\t: fma avx avx2 avx512f avx512_bf16\n")
    assert cpu_vector_isa(avx512) == "AVX-512"
    assert cpu_vector_isa(_cpuinfo(tmp_path, "flags\t\t: fma avx avx2\n")) == "AVX2"
    assert cpu_vector_isa(_cpuinfo(tmp_path, "flags\t\t: sse4_2 avx\n")) == "below AVX2"
