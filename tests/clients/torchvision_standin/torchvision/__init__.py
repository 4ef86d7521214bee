"""A stand-in for the few torchvision names segment-anything 1.0 imports at module level, so that
samexporter's own exporter (tests/clients, never shipped) runs where torchvision cannot be
installed beside the CPU torch. Exporting a graph calls none of them; each raises if called."""
