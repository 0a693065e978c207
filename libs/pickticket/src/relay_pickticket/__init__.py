"""Recipe Relay PDF pick ticket: recipe in, printable PDF bytes out."""

from relay_pickticket.ticket import PREVIEW_MAX_PIXELS, TicketImage, TicketOrder, render_pick_ticket

__all__ = ["PREVIEW_MAX_PIXELS", "TicketImage", "TicketOrder", "render_pick_ticket"]
