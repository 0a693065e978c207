"""Recipe Relay PDF pick ticket: recipe in, printable PDF bytes out."""

from relay_pickticket.ticket import TicketImage, TicketOrder, render_pick_ticket

__all__ = ["TicketImage", "TicketOrder", "render_pick_ticket"]
