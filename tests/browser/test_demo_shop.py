"""The demo shop (/demo) in real Chromium: decisions fill its slots, messages, escaping."""

from __future__ import annotations

import shutil

from tests.browser.conftest import (ROOT, screenshot, server_call, stream_events, tracks, visit_as,
                                    wait_for)

WELCOME = "Welcome! Here is 10% off your first order: WELCOME10"
XSS = '<img src=x onerror="window.__xss = 1">'


def shoe_view(live, anonymous_id: str, product: str) -> None:
    server_call(live, "/v1/track", {"anonymousId": anonymous_id, "event": "Product Viewed",
                                    "properties": {"product_id": product, "category": "shoes"}})


def test_a_decision_fills_the_slot_on_a_first_visit(page, live):
    page.goto("/demo")
    hero = page.locator('[data-kairos-slot="hero"]')
    hero.get_by_text(WELCOME).wait_for()
    assert hero.locator("h2").inner_text() == WELCOME
    assert hero.evaluate("e => getComputedStyle(e).visibility") == "visible"
    assert page.locator("#catalog li").count() == 8


def test_a_returning_customer_sees_their_name_and_recently_viewed(page, context, live):
    visit_as(context, live, "returning-visitor")
    for product in ("leather-boot", "rain-jacket", "trail-runner"):
        server_call(live, "/v1/track", {"anonymousId": "returning-visitor", "event": "Product Viewed",
                                        "properties": {"product_id": product}})
    server_call(live, "/v1/identify", {"anonymousId": "returning-visitor",
                                       "traits": {"first_name": "Ada"}})
    page.goto("/demo")
    hero = page.locator('[data-kairos-slot="hero"]')
    hero.get_by_text("Welcome back, Ada!").wait_for()
    recent = page.locator('[data-kairos-slot="recently-viewed"] .card-name')
    recent.first.wait_for()
    assert recent.all_inner_texts() == ["Trail Runner", "Rain Jacket", "Leather Boot"]
    shot = screenshot(page, "demo-shop.png")
    readme_image = ROOT / "docs" / "demo-shop.png"
    if not readme_image.exists():
        shutil.copyfile(shot, readme_image)


def test_a_modal_opens_traps_focus_closes_on_escape_and_reports_it(page, context, live,
                                                                    redis_client):
    visit_as(context, live, "shoe-fan")
    shoe_view(live, "shoe-fan", "trail-runner")
    shoe_view(live, "shoe-fan", "city-sneaker")
    page.goto("/demo/product?id=leather-boot")
    dialog = page.get_by_role("dialog", name="Need help with your size?")
    dialog.wait_for()
    assert dialog.get_attribute("aria-modal") == "true"
    assert dialog.evaluate("d => d.contains(document.activeElement)")
    screenshot(page, "demo-shop-modal.png")
    for _ in range(3):  # Tab wraps around inside the dialog
        page.keyboard.press("Tab")
        assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Shift+Tab")
    assert dialog.evaluate("d => d.contains(document.activeElement)")
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")
    assert page.locator('[role="dialog"]').count() == 0
    dismissed = wait_for(lambda: [e for e in tracks(redis_client, "shoe-fan")
                                  if e["event"] == "Message Dismissed"])
    assert dismissed[0]["properties"] == {"rule": "shoe-size-help", "type": "modal"}
    shown = [e for e in tracks(redis_client, "shoe-fan") if e["event"] == "Message Shown"]
    assert [e["properties"]["rule"] for e in shown] == ["shoe-size-help"]


def test_a_trait_holding_markup_renders_as_text(page, context, live):
    visit_as(context, live, "mallory")
    server_call(live, "/v1/identify", {"anonymousId": "mallory", "traits": {"first_name": XSS}})
    page.goto("/demo")
    hero = page.locator('[data-kairos-slot="hero"]')
    hero.get_by_text("Welcome back,").wait_for()
    assert hero.inner_text() == f"Welcome back, {XSS}!"
    assert hero.locator("img").count() == 0
    assert page.locator("img").count() == 0
    page.wait_for_timeout(100)
    assert page.evaluate("window.__xss") is None


def test_signing_in_through_the_form_makes_the_next_page_personal(page, live, redis_client):
    page.goto("/demo")
    page.get_by_label("Email").fill("Ada@Example.com")
    page.get_by_label("First name").fill("Ada")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Signed in as Ada.").wait_for()
    wait_for(lambda: [e for _p, e in stream_events(redis_client) if e["type"] == "identify"])
    page.reload()
    page.locator('[data-kairos-slot="hero"]').get_by_text("Welcome back, Ada!").wait_for()
    profile = live.profile("user:demo-ada@example.com", key="demo-secret").json()
    assert profile["traits"]["email"] == "ada@example.com"


def test_add_to_cart_and_checkout_send_the_shops_events(page, live, redis_client):
    page.goto("/demo/product?id=city-sneaker")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("button", name="Add to cart").click()
    assert page.locator("#cart-count").inner_text() == "2"
    page.get_by_role("link", name="Cart (2)").click()
    page.wait_for_url("**/demo/cart")
    assert page.locator("#cart-total").inner_text() == "130.00 €"
    page.get_by_role("button", name="Checkout").click()
    page.get_by_text("Thank you!").wait_for()
    order = wait_for(lambda: [e for e in tracks(redis_client) if e["event"] == "Order Completed"])
    assert order[0]["properties"]["revenue"] == 130
    names = [e["event"] for e in tracks(redis_client)]
    assert names.index("Product Viewed") < names.index("Product Added") < names.index("Order Completed")
    assert names.count("Product Added") == 2
