"""``GET /``: the web page (Jinja2 template + a small vanilla script served from /static)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from rakuten_serve.deps import SettingsDep

PACKAGE_DIR = Path(__file__).resolve().parent.parent
STATIC_DIR = PACKAGE_DIR / "static"
templates = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
router = APIRouter(tags=["web"])

# The page loads its script from /static only; no inline script, no third-party origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


@router.get(
    "/",
    response_class=HTMLResponse,
    summary="Web page: log in, describe a product, see its top categories",
    responses={200: {"content": {"text/html": {"example": "<!doctype html>..."}}}},
)
async def index(request: Request, settings: SettingsDep) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        "index.html",
        {
            "max_designation": settings.designation_max_chars,
            "max_description": settings.description_max_chars,
            "max_image_mb": round(settings.image_max_bytes / 1024 / 1024, 1),
        },
    )
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
