"""Shopify webhooks: verified at the door, then mapped onto the event catalogue and contact facts.

signature.py checks the HMAC, views.py is the endpoint, topics.py dispatches each topic to the
module that maps it: orders.py, checkouts.py, customers.py and compliance.py (the privacy topics
and app/uninstalled).
"""
