"""The HTTP edge: GraphQL over HTTP, persisted documents, body and rate limits, load shedding,
uvicorn's protocol, GraphiQL and the WhatsApp webhook endpoint."""
