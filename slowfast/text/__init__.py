"""Text side: LLM client, ASKG and extended-prompt stages, text-feature files."""
