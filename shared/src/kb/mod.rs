//! The knowledge base: documents a business uploads, turned into chunks the bot answers from
//! (ARCHITECTURE.md, "Knowledge base").
//!
//! - [`extract`]: text out of PDF, DOCX, HTML, Markdown, plain text and CSV, bounded in memory.
//! - [`chunk`]: text cut on headings, paragraphs and sentences to a token budget with overlap.
//! - [`fixtures`]: small valid files of each format, made in code (tests and the benchmark).
//! - [`documents`]: uploaded documents and their chunks as the API shows them.
//! - [`ingest`]: the `kb.ingest_document` job: extract, chunk, embed, replace the chunks.
//! - [`embedding`]: which model embeds an organization's chunks; its text search language.
//! - [`vectors`]: the in-memory vector scan; [`search`]: hybrid retrieval fused by rank.

pub mod chunk;
pub mod documents;
pub mod embedding;
pub mod extract;
pub mod fixtures;
pub mod ingest;
pub mod search;
pub mod vectors;
