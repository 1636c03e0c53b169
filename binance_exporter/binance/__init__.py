"""Everything that talks to Binance: REST through binance-connector and the
request gate, the websocket streams, and the parsing of what Binance sends.
"""
