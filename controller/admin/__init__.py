"""The admin HTTP API (:mod:`controller.admin.server`; its routes in
:mod:`controller.admin.routes`, one module per area), its OpenAPI document and the flow diagram
page."""
