"""The model's view of a conversation, folded from the session's event log.

The event log is the only source of truth: the transcript the model reads is derived from it, the same way
after a restart as during a live session.
"""

from __future__ import annotations

import json
from typing import Any

#: The event types the model's transcript is folded from; the others (token, activity, usage, ...) are for
#: people only and never reach the model.
TRANSCRIPT_EVENTS = ("message", "tool_result", "done", "error", "turn_review", "compaction")


class Transcript:
    """The model's transcript folded from events, with each user message placed where its turn started.

    A prompt sent while another turn runs is logged at once (everyone sees it) but must not reach the model
    before its own turn: the running turn would answer it too, and a prompt logged between a tool call and
    its result would split them. Such a message waits until :meth:`start_turn`; when a log is read back
    (after a restart), the first event of the turn starts it.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._waiting: dict[str, dict[str, Any]] = {}
        self._notes: list[str] = []  # what people did to earlier turns' changes, told with the next prompt
        #: The model's summary of the conversation before the latest ``compaction`` (engine.context).
        self.memory = ""
        self._starts: dict[str, int] = {}  # turn id -> index of its prompt in ``messages``

    def start(self, turn_id: str) -> int:
        """Where the turn's prompt is in ``messages`` (0 when it is not there)."""
        return self._starts.get(turn_id, 0)

    def start_turn(self, turn_id: str) -> None:
        message = self._waiting.pop(turn_id, None)
        if message is not None:
            if self._notes and isinstance(message["content"], str):
                message = {**message, "content": "\n".join([*self._notes, message["content"]])}
                self._notes.clear()
            self._starts[turn_id] = len(self.messages)
            self.messages.append(message)

    def apply(self, event: dict[str, Any]) -> None:
        if event.get("task"):  # a planner task's own conversation, not the session's
            return
        kind, turn = event.get("type"), event.get("turn")
        if kind == "turn_review":
            self._notes.append(review_note(event))
            return
        if kind == "message" and event.get("role") == "user" and turn:
            self._waiting[turn] = {"role": "user", "content": event.get("model_content", event["content"])}
            return
        if turn in self._waiting:
            self.start_turn(turn)
        if kind == "compaction":  # what came before this turn now lives in the memory
            at = self._starts.get(str(turn))
            self.memory = str(event.get("summary") or "")
            self.messages = self.messages[at if at is not None else len(self.messages) :]
            self._starts = {str(turn): 0} if at is not None else {}
            return
        if kind in ("message", "tool_result"):
            apply_event(self.messages, event)


REVIEW_WORDS = {
    "undo": "undid",
    "redo": "redid",
    "accept": "accepted",
    "reject": "rejected",
    "resolve": "settled conflicts of",
}


def review_note(event: dict[str, Any]) -> str:
    """What the model is told, with the next prompt, of a person's undo, redo, accept or reject."""
    who = (event.get("user") or {}).get("username") or "a person"
    action = REVIEW_WORDS.get(str(event.get("action")), str(event.get("action")))
    keys = [*(event.get("reverted") or []), *(event.get("applied") or []), *(event.get("accepted") or [])]
    names = ", ".join(k.split(":", 1)[1] for k in keys[:10]) or "nothing"
    note = f"[Note: {who} {action} the changes of an earlier turn ({names})."
    if event.get("conflicts"):
        note += f" {len(event['conflicts'])} change(s) were left as people had edited them."
    return note + " Read notebooks and files again before editing them.]"


def apply_event(history: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Add what one logged message or tool result means for the model's transcript."""
    kind = event.get("type")
    if kind == "message":
        message: dict[str, Any] = {
            "role": event["role"],
            "content": event.get("model_content", event["content"]),
        }
        if event.get("tool_calls"):
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": _as_text(c.get("arguments", ""))},
                }
                for c in event["tool_calls"]
            ]
            message["content"] = message["content"] or None
        history.append(message)
    elif kind == "tool_result":
        message = {"role": "tool", "tool_call_id": event["call_id"], "content": event.get("content", "")}
        if event.get("images"):
            message["images"] = event["images"]  # kept aside: see for_model
        history.append(message)


def _as_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


MAX_IMAGES_PER_BATCH = 4


def for_model(history: list[dict[str, Any]], vision: bool = False) -> list[dict[str, Any]]:
    """A transcript every provider accepts: each assistant tool call is followed by its result.

    A turn cancelled or interrupted between a tool call and its result would otherwise leave a call without
    a result, which providers reject; such calls get a short result saying they did not run.

    Images from tools (screenshots, plots) cannot travel in tool messages: for a model that can see, they
    follow the batch of tool results as one user message with image parts; otherwise each tool result says
    what it showed and that the model cannot see it.
    """
    out: list[dict[str, Any]] = []
    pending: list[str] = []
    images: list[dict[str, Any]] = []

    def close_pending() -> None:
        for call_id in pending:
            out.append(
                {"role": "tool", "tool_call_id": call_id, "content": "Error: cancelled before it finished"}
            )
        pending.clear()
        if images:
            parts: list[dict[str, Any]] = [
                {"type": "text", "text": "Images produced by the tool calls above:"}
            ]
            for image in images[-MAX_IMAGES_PER_BATCH:]:
                url = f"data:{image['mime']};base64,{image['data']}"
                parts.append({"type": "image_url", "image_url": {"url": url}})
            out.append({"role": "user", "content": parts})
            images.clear()

    for message in history:
        if message["role"] == "tool":
            if message["tool_call_id"] in pending:
                pending.remove(message["tool_call_id"])
                message = dict(message)
                shown = message.pop("images", None) or []
                if shown and vision:
                    images.extend(shown)
                elif shown:
                    message["content"] += (
                        f"\n[{len(shown)} image(s) not shown: this model cannot see images; rely on the text above]"
                    )
                out.append(message)
            continue
        close_pending()
        out.append(message)
        if message["role"] == "assistant":
            pending.extend(c["id"] for c in message.get("tool_calls") or [])
    close_pending()
    return out
