"""Scheduled briefings: a named schedule, a producer, an account and its recipients."""

from delivery.briefings.admin import BriefingInfo, add_briefing, list_briefings, remove_briefing
from delivery.briefings.producers import BriefingSlot

__all__ = ["BriefingInfo", "BriefingSlot", "add_briefing", "list_briefings", "remove_briefing"]
