"""The LangChain and LlamaIndex retrievers of fruxon_client, with the real libraries against
the real stack: alone, inside a LangChain chain and inside a LlamaIndex query engine, each
with a fake LLM that only shows what it was given."""

from __future__ import annotations

import asyncio

import pytest
from sitegen import Site, generate_pages

from fruxon_api.auth import READ, WRITE, issue_token
from fruxon_client import AsyncFruxon, Fruxon

pytestmark = pytest.mark.e2e
TENANT = "retrievers"
NEEDLE = "Ferries to the outer islands leave from pier nine at dawn."
HEADING = "Ferries"  # the page's h1: its chunks' heading path starts there


@pytest.fixture(scope="module")
def token(stack):
    return issue_token(stack.settings, tenants=[TENANT], scopes=[READ])


@pytest.fixture(scope="module")
def asset_id(stack):
    """Four generated pages and one with the needle under its own heading."""
    writer = issue_token(stack.settings, tenants=[TENANT], scopes=[WRITE])
    with Site() as site, Fruxon(stack.api_url(), writer, TENANT) as client:
        pages = generate_pages(4, links="all", seed=31)
        harbour = " ".join(
            f"The harbour office on quay {n} sells tickets, lends umbrellas and keeps lost "
            "luggage for a week."
            for n in range(1, 6)
        )
        pages["/ferries.html"] = (
            f"<html><head><title>Ferries</title></head><body><article><h1>{HEADING}</h1>"
            f"<h2>Tickets</h2><p>{harbour}</p><h2>Timetable</h2><p>{NEEDLE}</p>"
            "</article></body></html>"
        )
        pages["/"] = pages["/"].replace("</body>", '<a href="/ferries.html">ferries</a></body>')
        for path, body in pages.items():
            site.put(path, body)
        change = client.assets.create(
            config={"sourceType": "web", "parameters": {"urls": [site.url("/")], "maxDepth": 1}},
            embedding={"provider": "local", "model": "all-MiniLM-L6-v2"},
        )
        assert change.operation.wait(timeout=300).status == "COMPLETED"
        documents = list(client.documents.list(change.asset.id))
        assert any((d.sourceUrl or "").endswith("/ferries.html") for d in documents)
        yield change.asset.id


@pytest.fixture(scope="module")
def client(stack, token):
    with Fruxon(stack.api_url(), token, TENANT) as sdk:
        yield sdk


def _is_the_needle(metadata: dict, asset_id: str) -> bool:
    return (
        metadata["source_url"].endswith("/ferries.html")
        and (metadata["heading_path"] or "").startswith(HEADING)
        and metadata["asset_id"] == asset_id
        and metadata["score"] > 0
    )


def test_langchain_retriever_returns_documents_with_source_heading_and_score(client, asset_id):
    from langchain_core.documents import Document

    from fruxon_client.langchain import FruxonRetriever

    retriever = FruxonRetriever(client=client, search_kwargs={"top_k": 3, "search_mode": "HYBRID"})
    documents = retriever.invoke("when do ferries leave for the islands?")
    assert 1 <= len(documents) <= 3 and all(isinstance(d, Document) for d in documents)
    best = documents[0]
    assert NEEDLE in best.page_content and _is_the_needle(best.metadata, asset_id)
    assert best.metadata["source"] == best.metadata["source_url"]
    scores = [d.metadata["score"] for d in documents]
    assert scores == sorted(scores, reverse=True)
    # Any field of the search request narrows it: here a filter no document passes.
    narrowed = FruxonRetriever(client=client, search_kwargs={"filter": {"urlPrefix": "ftp://"}})
    assert narrowed.invoke("ferries") == []


def test_langchain_retriever_feeds_a_chain(client, asset_id, stack, token):
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import PromptTemplate
    from langchain_core.runnables import RunnablePassthrough

    from fruxon_client.langchain import FruxonRetriever

    class Prompts(BaseCallbackHandler):
        seen: list[str] = []

        def on_llm_start(self, serialized, prompts, **kwargs) -> None:
            self.seen.extend(prompts)

    seen = Prompts()
    retriever = FruxonRetriever(client=client, search_kwargs={"top_k": 2})
    prompt = PromptTemplate.from_template("Context:\n{context}\n\nQuestion: {question}\nAnswer:")
    llm = FakeListLLM(responses=["At dawn, from pier nine."], callbacks=[seen])
    chain = (
        {
            "context": retriever | (lambda docs: "\n\n".join(d.page_content for d in docs)),
            "question": RunnablePassthrough(),
        }
        | prompt
        | llm
        | StrOutputParser()
    )
    assert chain.invoke("When do the island ferries leave?") == "At dawn, from pier nine."
    [sent] = seen.seen
    assert NEEDLE in sent and "Question: When do the island ferries leave?" in sent

    async def with_the_async_client() -> list:
        async with AsyncFruxon(stack.api_url(), token, TENANT) as sdk:
            asynchronous = FruxonRetriever(
                client=client, async_client=sdk, search_kwargs={"top_k": 2}
            )
            return await asynchronous.ainvoke("island ferries pier")

    documents = asyncio.run(with_the_async_client())
    assert NEEDLE in documents[0].page_content and _is_the_needle(documents[0].metadata, asset_id)


def test_llamaindex_retriever_returns_scored_nodes(client, asset_id):
    from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

    from fruxon_client.llamaindex import FruxonRetriever

    retriever = FruxonRetriever(client, top_k=3, search_mode="VECTOR", asset_ids=[asset_id])
    nodes = retriever.retrieve("when do ferries leave for the islands?")
    assert 1 <= len(nodes) <= 3 and all(isinstance(n, NodeWithScore) for n in nodes)
    best = nodes[0]
    assert isinstance(best.node, TextNode) and NEEDLE in best.node.get_content()
    assert best.score == best.node.metadata["score"] > 0
    assert _is_the_needle(best.node.metadata, asset_id)
    # What an LLM is shown with the text: where it is from, not the ids.
    shown = best.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "ferries.html" in shown and HEADING in shown and asset_id not in shown


def test_llamaindex_retriever_feeds_a_query_engine(client, asset_id, stack, token):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine

    from fruxon_client.llamaindex import FruxonRetriever

    # MockLLM without max_tokens answers with the prompt it was given: the context shows.
    engine = RetrieverQueryEngine.from_args(FruxonRetriever(client, top_k=2), llm=MockLLM())
    response = engine.query("When do the island ferries leave?")
    assert NEEDLE in str(response) and "When do the island ferries leave?" in str(response)
    assert _is_the_needle(response.source_nodes[0].node.metadata, asset_id)

    async def with_the_async_client():
        async with AsyncFruxon(stack.api_url(), token, TENANT) as sdk:
            retriever = FruxonRetriever(client, async_client=sdk, top_k=2)
            engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
            return await engine.aquery("island ferries pier")

    answered = asyncio.run(with_the_async_client())
    assert NEEDLE in str(answered)
