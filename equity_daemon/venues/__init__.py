"""Places the fund holds positions, behind one small protocol (`base.Venue`)."""

from equity_daemon.venues.base import StreamingVenue as StreamingVenue
from equity_daemon.venues.base import Venue as Venue
