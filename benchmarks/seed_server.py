"""The baseline for serve_load.py: what a first storefront prototype looks like.

transformers `generate` per request behind a plain HTTP endpoint, one generation at a time
(a lock, like a Gradio app's default queue), history in a dict. Same routes and bodies as the
storefront (`POST /v1/chat`, `POST /v1/extract`) and the same model, system prompt and token
limits, so the load generator drives both the same way. Not part of shoptune: a baseline.

    python benchmarks/seed_server.py --model DIR --port 9090
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI
from transformers import AutoModelForCausalLM, AutoTokenizer


def build_app(model_dir: str, system_prompt: str, max_new_tokens: int) -> FastAPI:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    lock = threading.Lock()
    sessions: dict[str, list[dict[str, str]]] = {}
    app = FastAPI()

    def generate(messages: list[dict[str, str]], limit: int) -> str:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with lock, torch.inference_mode():
            output = model.generate(**ids, max_new_tokens=limit, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        return tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat")
    def chat(body: dict[str, Any]) -> dict[str, Any]:
        history = sessions.setdefault(body["session_id"], [])
        messages = [
            {"role": "system", "content": system_prompt},
            *history,
            {"role": "user", "content": body["message"]},
        ]
        reply = generate(messages, max_new_tokens)
        history += [{"role": "user", "content": body["message"]}, {"role": "assistant", "content": reply}]
        return {"session_id": body["session_id"], "reply": reply}

    @app.post("/v1/extract")
    def extract(body: dict[str, Any]) -> dict[str, Any]:
        prompt = f"Extract a JSON object for the schema {body['schema']} from the shopper's text. Reply with JSON only."
        text = generate([{"role": "system", "content": prompt}, {"role": "user", "content": body["text"]}], 200)
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        return {"schema": body["schema"], "data": data}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--system-prompt", default="You are the shop's customer-service assistant.")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    app = build_app(args.model, args.system_prompt, args.max_new_tokens)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
