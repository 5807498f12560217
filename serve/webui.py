"""The web chat page (Gradio; default port 7860). It talks to the storefront
API like any other client and shows the conversation and the products each answer grounded on.

    SHOPTUNE_API_KEY=secret shoptune serve ui --api http://127.0.0.1:8080
"""

from __future__ import annotations

import os
import uuid
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a closed network


def ask(api_url: str, api_key: str, session_id: str, message: str, timeout_s: float = 180.0) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(
            f"{api_url.rstrip('/')}/v1/chat",
            json={"session_id": session_id, "message": message},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        return {"reply": f"(the shop assistant is unreachable: {exc.__class__.__name__})", "products": []}
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code != 200:
        return {"reply": f"(error {response.status_code}: {body.get('error', response.text[:200])})", "products": []}
    return body


def build_ui(api_url: str, api_key: str):
    import gradio as gr

    def respond(message: str, history: list[dict[str, str]], session_id: str):
        if not message.strip():
            return "", history, gr.update()
        body = ask(api_url, api_key, session_id, message)
        history = [*history, {"role": "user", "content": message}, {"role": "assistant", "content": body["reply"]}]
        rows = [[p["sku"], p["name"], p["price"], "yes" if p["in_stock"] else "no"] for p in body.get("products", [])]
        return "", history, rows

    with gr.Blocks(title="YouXuan Mall assistant") as page:
        gr.Markdown("## YouXuan Mall · 优选商城 assistant")
        session = gr.State(lambda: uuid.uuid4().hex)
        chatbot = gr.Chatbot(label="Conversation", elem_id="conversation", height=420)
        with gr.Row():
            box = gr.Textbox(
                placeholder="Ask about products, orders, returns… 请输入您的问题",
                show_label=False,
                elem_id="message",
                scale=5,
            )
            send = gr.Button("Send", elem_id="send", variant="primary", scale=1)
        products = gr.Dataframe(
            headers=["sku", "name", "price", "in stock"],
            label="Products this answer grounded on",
            elem_id="products",
            interactive=False,
        )
        send.click(respond, [box, chatbot, session], [box, chatbot, products])
        box.submit(respond, [box, chatbot, session], [box, chatbot, products])
    return page
