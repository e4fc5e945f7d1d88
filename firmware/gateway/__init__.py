"""The media gateway: analog line agents (FXS ports as SIP stations, FXO
ports as trunks).  The service lives in firmware/gateway/service.py; this
package init stays empty so that importing the configuration schema
(firmware/voice/config.py, loaded at every boot) does not pull the SIP UA,
RTP and agent code into the heap of an appliance without analog config.

Modules: service.py (GatewayService, the router's gateway module, the media
task), agent.py (what the port agents share), fxs.py, fxo.py.  They build on
sip/usage (dialog usages), firmware/media (RTP, call legs, mixer) and
firmware/voice (configuration, dial plan, who is in control).
"""
