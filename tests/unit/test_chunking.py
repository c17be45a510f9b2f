"""Token-bounded chunking with the model's own tokenizer."""

import pytest

from fruxon_pipelines.chunking import chunk_elements
from fruxon_pipelines.elements import Element
from fruxon_pipelines.embedding import get_tokenizer

PROSE = (
    "Retrieval systems split documents into pieces small enough for an embedding model. "
    "Each piece should still make sense on its own, so the splitter prefers paragraph and "
    "sentence boundaries to arbitrary token positions. "
)


def _doc() -> list[Element]:
    return [
        Element("Guide", kind="title", heading_level=1),
        Element(PROSE * 3),
        Element("Install", kind="title", heading_level=2),
        Element(PROSE * 6, page_number=2),
        Element("Usage", kind="title", heading_level=2),
        Element("Run it. " * 40, page_number=3),
    ]


def test_chunks_respect_size_in_model_tokens_and_map_back_to_text():
    tokenizer = get_tokenizer()
    chunks = chunk_elements(_doc(), tokenizer, chunk_size=64, chunk_overlap=8)
    assert len(chunks) > 4
    for chunk in chunks:
        assert 0 < chunk.token_count <= 64
        assert tokenizer.count([chunk.content])[0] <= 64
        assert chunk.content.strip() == chunk.content
    text_lengths = [c.end_char - c.start_char for c in chunks]
    assert all(n == len(c.content) for n, c in zip(text_lengths, chunks, strict=True))
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_heading_path_and_page_follow_the_element_a_chunk_starts_in():
    chunks = chunk_elements(_doc(), get_tokenizer(), chunk_size=64, chunk_overlap=8)
    assert chunks[0].heading_path == "Guide"
    assert any(c.heading_path == "Guide > Install" and c.page_number == 2 for c in chunks)
    assert chunks[-1].heading_path == "Guide > Usage"
    assert chunks[-1].page_number == 3
    assert chunks[-1].start_line > chunks[0].start_line


def test_overlap_repeats_the_tail_of_the_previous_chunk():
    elements = [Element(PROSE * 10)]
    chunks = chunk_elements(elements, get_tokenizer(), chunk_size=48, chunk_overlap=12)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        assert current.start_char < previous.end_char  # windows overlap
        assert current.start_char > previous.start_char  # and always advance


def test_chunks_prefer_element_boundaries():
    elements = [Element("First paragraph. " * 5), Element("Second paragraph. " * 5)]
    chunks = chunk_elements(elements, get_tokenizer(), chunk_size=20, chunk_overlap=0)
    assert chunks[0].content.endswith("First paragraph.")


def test_unchanged_text_gives_identical_chunks():
    one = chunk_elements(_doc(), get_tokenizer(), chunk_size=64, chunk_overlap=8)
    two = chunk_elements(_doc(), get_tokenizer(), chunk_size=64, chunk_overlap=8)
    assert [c.content_hash for c in one] == [c.content_hash for c in two]


def test_empty_and_invalid_input():
    assert chunk_elements([Element("   ")], get_tokenizer(), chunk_size=64, chunk_overlap=8) == []
    with pytest.raises(ValueError):
        chunk_elements([Element("x")], get_tokenizer(), chunk_size=10, chunk_overlap=10)
