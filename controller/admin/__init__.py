"""The admin HTTP API (:mod:`controller.admin.server`), its OpenAPI document and the flow
diagram page."""
