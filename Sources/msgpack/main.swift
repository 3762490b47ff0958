print("msgpack: not yet")
