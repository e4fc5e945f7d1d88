"""The media gateway: analog line agents (FXS ports as SIP stations, FXO
ports as trunks).  The service lives in firmware/gateway/service.py; this
package init stays empty so that importing the configuration schema
(firmware/voice/config.py, loaded at every boot) does not pull the SIP UA,
RTP and agent code into the heap of an appliance without analog config.

Modules: service.py (GatewayService, routing, media task), ua.py (reusable
SIP UA layer), leg.py, media.py, dialplan.py, fxs.py, fxo.py, config.py.
"""
