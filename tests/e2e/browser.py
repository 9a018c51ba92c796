"""Headless Chromium (Debian's chromium + chromium-driver) driven by Selenium, with the flags a
closed network needs: no background networking, no component updates, no sync."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1100",
)


def missing_browser() -> str | None:
    """Why no browser test can run here, or None."""
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return (
                f"{binary} not found (Debian packages chromium and chromium-driver; scripts/install_test_services.sh)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-dev.txt)"
    return None


def start_chromium(profile_dir: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(shutil.which("chromium"))
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(shutil.which("chromedriver"))), options=options)
