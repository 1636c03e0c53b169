"""The fake Binance: a simulated market served over Binance's REST and websocket protocols, with faults on demand."""
