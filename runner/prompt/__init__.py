"""From a recipe's templates to the requests a task sends: the template context
(``views``), the sandbox (``templating``) and its budget, request bodies (``payloads``),
and ``render``'s preview."""
