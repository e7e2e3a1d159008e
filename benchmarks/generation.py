"""Generation speed per engine, with and without prompt lookup, against the memory-bandwidth bound.

    python benchmarks/generation.py [--engines transformers,llamacpp] [--repeats 3]

Decoding reads every weight once per token, so tokens/s can be at most memory bandwidth (measured
here with a numpy copy) divided by the bytes of weights; prompt lookup copies drafted tokens from
the passages and verifies several per weight read, so it can beat that bound.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant import generation  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.generation import LlamaCppGenerator, resolve_model  # noqa: E402

PASSAGES = [
    "Acme Corp and Globex Ltd announced on Monday that their boards have approved a merger of "
    "the two companies' logistics divisions. Under the agreement, Acme will hold 60 percent of "
    "the combined unit and Globex the remaining 40 percent. The deal is to be finalised by "
    "April 26, after the competition authority has completed its review of the regional "
    "freight market. Both companies said they expect the review to be routine, since their "
    "networks overlap in only three of the eleven regions they serve. The combined unit will "
    "be headquartered in Rotterdam and led by Maria Jensen, currently head of operations at "
    "Acme. Globex's chief executive, Tom Barker, will chair the new board. Analysts at Norden "
    "Bank estimated the annual savings at 85 million euros, mostly from shared warehouses and "
    "a single fleet management system. Staff representatives asked for guarantees on jobs; "
    "management replied that no compulsory redundancies are planned before 2027. Shares of "
    "both companies rose slightly after the announcement, while competitors' shares were flat. "
    "The companies will publish a joint prospectus for shareholders in the coming weeks, "
    "including audited figures for the last three financial years.",
    "The city council voted to extend the night bus network to the northern suburbs starting "
    "next autumn. Four new lines will run every thirty minutes between midnight and five in "
    "the morning, connecting the central station with Hillside, Marsh End, Oakfield and the "
    "university campus. The extension costs 2.4 million a year, paid in equal parts by the "
    "city and the regional transport authority. A trial last winter carried an average of 180 "
    "passengers a night on a single line, well above the 120 the council had set as the "
    "threshold for a permanent service. Residents of Marsh End had campaigned for the service "
    "for years, pointing out that shift workers at the hospital had no way home after late "
    "shifts. The transport authority will hire forty additional drivers and lease twelve "
    "electric buses, which will be charged at a new depot near the ring road. Fares will be "
    "the same as on day services, and monthly passes will be valid at night as well. The "
    "council will review passenger numbers after the first year of operation.",
    "Our internal travel policy was updated in March. Employees must book flights through the "
    "company portal at least fourteen days before departure, unless a manager approves a late "
    "booking in writing. Economy class is the default for flights under six hours; business "
    "class may be booked for longer flights with approval from a director. Hotel costs are "
    "reimbursed up to 180 euros a night in capital cities and 130 euros elsewhere. Meals are "
    "covered by a daily allowance of 45 euros, which replaces itemised receipts. Rail travel "
    "is preferred over flying for journeys shorter than four hours. Expense reports must be "
    "submitted within thirty days of returning, with receipts attached as PDF files. Travel "
    "to countries on the security watch list requires a briefing with the security team one "
    "week before departure. Questions about the policy should be sent to the finance office, "
    "which answers within two working days. Exceptions are logged and reviewed each quarter "
    "by the finance committee.",
    "The research team finished the second phase of the soil study in the river delta. Samples "
    "from 240 plots showed that nitrogen levels fell by 18 percent on farms that had switched "
    "to cover crops three years earlier, compared with farms that had not. Yields of wheat "
    "were unchanged within the margin of error, while yields of barley rose by four percent. "
    "The team also measured water retention, which improved on clay soils but not on sandy "
    "ones. Farmers who took part received a summary of their own plots and an invitation to "
    "a workshop in June. The third phase will extend the study to the upland farms and add "
    "measurements of soil carbon, using the same sampling grid so that results can be "
    "compared directly. Funding for the third phase comes from the regional agriculture fund "
    "and two private foundations. The final report is expected at the end of next year and "
    "will be published openly together with the anonymised data.",
]
QUESTION = "When is the Acme and Globex deal to be finalised, and who will lead the combined unit?"
SYSTEM = (
    "You answer questions using only the numbered passages given. Cite the passage you use as "
    "[n] after each sentence. If the passages do not contain the answer, say you don't know."
)


def rag_messages() -> list[dict[str, str]]:
    """A realistic RAG prompt: numbered passages of ~200 words and a question."""
    passages = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(PASSAGES, 1))
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Passages:\n\n{passages}\n\nQuestion: {QUESTION}"},
    ]


def memory_bandwidth(gigabytes: float = 1.0, repeats: int = 5) -> float:
    """GB/s of a large numpy copy, counting bytes read plus bytes written (median of repeats)."""
    n = int(gigabytes * 1e9) // 8
    src = np.ones(n, dtype=np.float64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # touch the pages first
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t)
    return 2 * src.nbytes / statistics.median(times) / 1e9


def weight_bytes(gen: object) -> int:
    """Bytes of weights read to decode one token (the embedding table only if it is the head)."""
    if isinstance(gen, generation.TransformersGenerator):
        seen, total = set(), 0
        embed = gen.model.get_input_embeddings().weight
        head = gen.model.get_output_embeddings().weight
        for p in gen.model.parameters():
            if p.data_ptr() in seen or (p is embed and head.data_ptr() != embed.data_ptr()):
                continue
            seen.add(p.data_ptr())
            total += p.numel() * p.element_size()
        return total
    import gguf

    reader = gguf.GGUFReader(gen.llama.model_path)
    sizes = {t.name: int(t.n_bytes) for t in reader.tensors}
    if "output.weight" in sizes:
        sizes.pop("token_embd.weight", None)
    return sum(sizes.values())


def load(engine: str, cache_dir: Path, lookup: bool) -> tuple[object, float]:
    """A generator for `engine` with prompt lookup on or off, and its load time in seconds."""
    cfg = Config.from_env(engine=engine, cache_dir=cache_dir, prompt_lookup=lookup)
    started = time.perf_counter()
    if engine == "llamacpp":
        # The assistant never turns prompt lookup on for llama.cpp; measure it all the same.
        source, name, _ = resolve_model(cfg)
        gen = LlamaCppGenerator.load(source, cfg, f"llamacpp:{name}", prompt_lookup=lookup)
    else:
        gen = generation.load_generator(cfg)
    if isinstance(gen, generation.TransformersGenerator):
        gen.prompt_lookup = lookup
    return gen, time.perf_counter() - started


def run_once(gen: object, messages: list[dict[str, str]], max_new_tokens: int) -> dict:
    """One streamed reply: time to first piece, total time, and the text."""
    if isinstance(gen, generation.LlamaCppGenerator):
        gen.llama.reset()  # otherwise llama.cpp reuses the previous run's prompt from its KV cache
    started = time.perf_counter()
    first = None
    pieces = []
    for piece in gen.stream(messages, max_new_tokens=max_new_tokens):
        if first is None:
            first = time.perf_counter() - started
        pieces.append(piece)
    total = time.perf_counter() - started
    text = "".join(pieces)
    return {"ttft": first or total, "total": total, "text": text, "tokens": gen.count_tokens(text)}


def prompt_tokens(gen: object, messages: list[dict[str, str]]) -> int:
    """Tokens of the templated prompt."""
    if isinstance(gen, generation.TransformersGenerator):
        ids = gen.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_dict=True
        )
        return len(ids["input_ids"])
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = gen.llama.metadata["tokenizer.chat_template"]
    prompt = Jinja2ChatFormatter(template, eos_token="", bos_token="")(messages=messages).prompt
    return len(gen.llama.tokenize(prompt.encode(), add_bos=False, special=True))


def main() -> None:
    """Measure each engine and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engines", default="transformers,llamacpp")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]

    base = Config.from_env()
    cache_dir = args.cache_dir or base.cache_dir
    print("load average at start (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    bandwidth = memory_bandwidth()
    print(f"memory bandwidth (numpy copy of 1 GB, read+write): {bandwidth:.1f} GB/s")
    messages = rag_messages()
    rows = []
    for engine in args.engines.split(","):
        if engine == "llamacpp" and not generation.llamacpp_installed():
            print("llamacpp: skipped (llama-cpp-python is not installed)")
            continue
        texts = {}
        gen = None
        for lookup in (False, True):
            if gen is None or isinstance(gen, generation.LlamaCppGenerator):
                # llama.cpp fixes prompt lookup when the model is created; load it again.
                gen = None
                gc.collect()
                gen, load_s = load(engine, cache_dir, lookup)
                n_prompt = prompt_tokens(gen, messages)
                read = weight_bytes(gen)
                run_once(gen, messages, 4)  # warm-up
            gen.prompt_lookup = lookup
            runs = [run_once(gen, messages, args.max_new_tokens) for _ in range(args.repeats)]
            ttft = statistics.median(r["ttft"] for r in runs)
            gen_tps = statistics.median(
                (r["tokens"] - 1) / max(r["total"] - r["ttft"], 1e-9) for r in runs
            )
            texts[lookup] = runs[0]["text"]
            rows.append(
                {
                    "engine": engine,
                    "lookup": lookup,
                    "load": load_s,
                    "prompt": n_prompt,
                    "prompt_tps": n_prompt / ttft,
                    "ttft": ttft,
                    "gen_tps": gen_tps,
                    "bound": bandwidth * 1e9 / read,
                }
            )
        off = next(r for r in rows if r["engine"] == engine and not r["lookup"])
        rows[-1]["speedup"] = rows[-1]["gen_tps"] / off["gen_tps"]
        print(f"\n{gen.name}: weights read per token {read / 1e9:.2f} GB")
        print(f"  reply: {texts[False]!r}")
        print(f"  same reply with prompt lookup: {texts[False] == texts[True]}")
        del gen
        gc.collect()

    print(
        f"\n{'engine':<13} {'lookup':<6} {'load s':>7} {'prompt':>6} {'prompt tok/s':>12} "
        f"{'TTFT s':>7} {'gen tok/s':>9} {'bound tok/s':>11} {'÷ bound':>7} {'÷ no lookup':>11}"
    )
    for r in rows:
        print(
            f"{r['engine']:<13} {'on' if r['lookup'] else 'off':<6} {r['load']:>7.1f} "
            f"{r['prompt']:>6} {r['prompt_tps']:>12.1f} {r['ttft']:>7.2f} {r['gen_tps']:>9.1f} "
            f"{r['bound']:>11.1f} {r['gen_tps'] / r['bound']:>7.2f} "
            f"{r.get('speedup', 1.0):>11.2f}"
        )
    print(
        f"\nmedians over {args.repeats} repeats, {args.max_new_tokens} new tokens at most; "
        "prompt tok/s = prompt tokens / time to first token; load = with a warm cache"
    )
    print("load average at end (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
