"""The shop contract every stage shares: the catalogue, schemas, policy and style guide
(`resources`), the prompts, the record format and its file:line validator (`records`, `check`,
`reading`), chat rendering with loss masks (`render`), the one form of structured output
(`structured`) and how the served model is asked (`decoding`)."""
