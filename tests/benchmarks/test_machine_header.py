"""The FER2013 results header names the CPU's widest vectors and generation where the machine
told them: two CPUs sold under one model name may differ in AVX-512, and so in what an hour
of training buys."""

from __future__ import annotations

from benchmarks.fer2013_accuracy import _vectors


def test_the_header_names_the_vectors_and_generation() -> None:
    machine = {"cpu_vector_isa": "AVX2", "cpu_generation": "family 23 model 1"}
    assert _vectors(machine) == ", widest vectors: AVX2 (family 23 model 1)"
    assert _vectors({"cpu_vector_isa": "AVX-512", "cpu_generation": None}) == (
        ", widest vectors: AVX-512")


def test_a_machine_without_cpuinfo_adds_nothing() -> None:
    assert _vectors({"cpu_vector_isa": None, "cpu_generation": None}) == ""
    assert _vectors({}) == ""  # no /proc/cpuinfo to read them from
