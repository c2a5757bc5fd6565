"""Event names known before any rule is read: Segment's semantic events, and the
events the edge and its snippet send themselves. `kairos check` warns about a
trigger one slip away from one of these (or from a name other definitions use)."""

from __future__ import annotations

from itertools import product

# Segment's E-commerce v2 spec.
ECOMMERCE_EVENTS = frozenset({
    "Products Searched", "Product List Viewed", "Product List Filtered", "Promotion Viewed",
    "Promotion Clicked", "Product Clicked", "Product Viewed", "Product Added",
    "Product Removed", "Cart Viewed", "Cart Cleared", "Checkout Started",
    "Checkout Step Viewed", "Checkout Step Completed", "Payment Info Entered",
    "Order Updated", "Order Completed", "Order Refunded", "Order Cancelled",
    "Coupon Entered", "Coupon Applied", "Coupon Denied", "Coupon Removed",
    "Product Added to Wishlist", "Product Removed from Wishlist",
    "Wishlist Product Added to Cart", "Product Shared", "Cart Shared", "Product Reviewed",
})

# Segment's other semantic specs: B2B SaaS, mobile, email, video.
SEGMENT_SEMANTIC_EVENTS = frozenset({
    "Account Created", "Account Deleted", "Signed Up", "Signed In", "Signed Out",
    "Invite Sent", "Account Added User", "Account Removed User", "Trial Started",
    "Trial Ended",
    "Application Installed", "Application Opened", "Application Updated",
    "Application Backgrounded", "Application Crashed", "Application Uninstalled",
    "Install Attributed", "Push Notification Received", "Push Notification Tapped",
    "Push Notification Bounced", "Deep Link Opened", "Deep Link Clicked",
    "Email Bounced", "Email Delivered", "Email Link Clicked", "Email Marked as Spam",
    "Email Opened", "Unsubscribed",
    "Video Playback Started", "Video Playback Paused", "Video Playback Interrupted",
    "Video Playback Buffer Started", "Video Playback Buffer Completed",
    "Video Playback Seek Started", "Video Playback Seek Completed",
    "Video Playback Resumed", "Video Playback Completed", "Video Playback Exited",
    "Video Content Started", "Video Content Playing", "Video Content Completed",
    "Video Ad Started", "Video Ad Playing", "Video Ad Completed",
})

# What the edge, its snippet and the delivering channels send: engagement with
# messages ("<channel> <what happened>", edge/ingest/engagement.py), consent, push
# subscriptions, experiment exposures, queued messages, catalog changes and logins on
# a shop's hotspot (edge/ingest/location.py).
ENGAGEMENT_CHANNELS = ("Message", "Push", "Email", "SMS", "WhatsApp")
ENGAGEMENT_KINDS = ("Shown", "Delivered", "Opened", "Clicked", "Dismissed")
EDGE_EVENTS = frozenset(
    {f"{channel} {kind}" for channel, kind in product(ENGAGEMENT_CHANNELS, ENGAGEMENT_KINDS)}
    | {"Consent Updated", "Push Subscribed", "Experiment Viewed", "Message Queued",
       "product_price_dropped", "product_back_in_stock", "Hotspot Login"})

KNOWN_EVENTS = ECOMMERCE_EVENTS | SEGMENT_SEMANTIC_EVENTS | EDGE_EVENTS
