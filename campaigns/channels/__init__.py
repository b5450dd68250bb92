"""Backends that send SMS and WhatsApp messages; campaigns.channels.base defines their interface."""
