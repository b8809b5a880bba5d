"""OpenAI's answer shapes: the endpoints' names and prefixes, a list page's ids, the error body, absent fields."""

from __future__ import annotations

from core.openai.protocol import (
    ChatCompletionChunk,
    Endpoint,
    OpenAIFile,
    OpenAIFileList,
    OpenAIList,
    error_body,
)


def test_each_endpoint_names_its_answer_its_chunks_and_its_ids():
    chat, text = Endpoint("/v1/chat/completions"), Endpoint("/v1/completions")
    assert (chat.object_name, chat.chunk_object_name, chat.id_prefix) == (
        "chat.completion",
        "chat.completion.chunk",
        "chatcmpl-",
    )
    assert (text.object_name, text.chunk_object_name, text.id_prefix) == ("text_completion", "text_completion", "cmpl-")


def file(file_id: str) -> OpenAIFile:
    return OpenAIFile(
        id=file_id,
        object="file",
        bytes=3,
        created_at=1,
        expires_at=2,
        filename="in.jsonl",
        purpose="batch",
        status="processed",
        status_details=None,
    )


def test_a_page_names_its_first_and_last_ids_and_whether_more_follow():
    page = OpenAIFileList.page([file("file-a"), file("file-b"), file("file-c")], has_more=True)
    body = page.model_dump(mode="json")
    assert (body["object"], body["first_id"], body["last_id"], body["has_more"]) == ("list", "file-a", "file-c", True)
    assert [item["id"] for item in body["data"]] == ["file-a", "file-b", "file-c"]
    assert body["data"][0]["status_details"] is None
    assert OpenAIList.page([], has_more=False).model_dump() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


def test_the_error_body_is_openais_shape_with_its_param_and_code():
    assert error_body("n: only n=1", "invalid_request_error", param="n", code="invalid_input").model_dump() == {
        "error": {"message": "n: only n=1", "type": "invalid_request_error", "param": "n", "code": "invalid_input"}
    }
    assert error_body("down", "server_error").model_dump()["error"] == {
        "message": "down",
        "type": "server_error",
        "param": None,
        "code": None,
    }


def test_a_chunk_leaves_out_what_it_was_not_built_with():
    chunk = ChatCompletionChunk(
        id="chatcmpl-x", object="chat.completion.chunk", created=0, model="m", choices=[], system_fingerprint=None
    )
    assert "usage" not in chunk.model_dump(mode="json", exclude_unset=True)
    assert chunk.model_dump(mode="json")["usage"] is None
