import pytest

import autoglm_lab as al
from autoglm_lab.pool import format_size, parse_size


@pytest.mark.parametrize(("text", "nbytes"), [
    ("64KiB", 65536), ("2MiB", 2 << 20), ("1GiB", 1 << 30), ("4096", 4096), (" 8 KiB ", 8192),
    ("1.5MiB", 3 << 19), ("2KB", 2000), ("16k", 16384), (123, 123),
])
def test_parse_size(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize("bad", ["64 parsecs", "", "-1KiB", "1.3B", True, 1.5, None])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad)  # type: ignore[arg-type]


def test_format_size_round_trips() -> None:
    for n in (64, 4096, 65536, 2 << 20, 3 << 30, 1000):
        assert parse_size(format_size(n)) == n


def test_defaults_and_normalised_sizes() -> None:
    cfg = al.PoolConfig(page_size="64KiB", memory_pool_initial_size="64MiB", max_size="256MiB")
    assert cfg.page_size == 65536 and cfg.memory_pool_initial_size == 64 << 20 and cfg.max_size == 256 << 20
    assert cfg.fit == "best" and cfg.coalesce == "eager" and cfg.compaction == "lazy"
    assert cfg.fragmentation_threshold_factor == 0.3 and cfg.free_ratio_trigger == 0.6
    assert cfg.max_consecutive_failures == 3 and cfg.defrag_interval_s == 30.0


def test_contract_signature_from_design() -> None:
    cfg = al.PoolConfig(page_size="64KiB", memory_pool_initial_size="64MiB", max_size="256MiB",
                        device="auto", fit="best", coalesce="eager",
                        fragmentation_threshold_factor=0.3, free_ratio_trigger=0.6,
                        max_consecutive_failures=3, defrag_interval_s=30.0,
                        compaction="lazy", compaction_budget_bytes=None)
    assert cfg.compaction_budget_bytes is None


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("page_size", "3KiB", "power of two"),
    ("page_size", 32, "power of two"),
    ("memory_pool_initial_size", "100KiB", "multiple of page_size"),
    ("memory_pool_initial_size", 0, "multiple of page_size"),
    ("max_size", "1MiB", "at least memory_pool_initial_size"),
    ("device", "tpu", "'auto', 'cpu'"),
    ("fit", "worst", "'first', 'best'"),
    ("coalesce", "sometimes", "'eager', 'lazy'"),
    ("compaction", "always", "'off', 'lazy', 'eager'"),
    ("compaction_strategy", "magic", "'two_finger', 'sliding'"),
    ("fragmentation_threshold_factor", 1.5, "0.0 to 1.0"),
    ("free_ratio_trigger", -0.1, "0.0 to 1.0"),
    ("free_ratio_trigger", "0.5", "0.0 to 1.0"),
    ("max_consecutive_failures", 0, "integer from 1"),
    ("max_consecutive_failures", 2.5, "integer from 1"),
    ("defrag_interval_s", 0, "seconds > 0"),
    ("compaction_budget_bytes", 100, "at least one page"),
    ("event_capacity", 1, "integer from 16"),
])
def test_every_bad_value_names_field_value_and_allowed(field: str, value: object, allowed: str) -> None:
    kwargs = {"page_size": "64KiB", "memory_pool_initial_size": "4MiB", "max_size": "8MiB", field: value}
    wrong_type = (field, value) in (("free_ratio_trigger", "0.5"), ("max_consecutive_failures", 2.5))
    with pytest.raises(TypeError if wrong_type else ValueError) as err:  # a wrong type is a TypeError
        al.PoolConfig(**kwargs)  # type: ignore[arg-type]
    msg = str(err.value)
    assert field in msg and repr(value) in msg and allowed in msg


def test_replace_validates_and_rejects_unknown_fields() -> None:
    cfg = al.PoolConfig()
    assert cfg.replace(fit="first").fit == "first"
    with pytest.raises(ValueError, match="unknown PoolConfig field"):
        cfg.replace(colour="red")
    with pytest.raises(ValueError, match="fit"):
        cfg.replace(fit="worst")
