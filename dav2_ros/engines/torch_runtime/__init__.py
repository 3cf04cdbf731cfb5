"""The torch runtime around the network: devices and precisions, the on-device frame path (GPU), torch.compile and
int8 quantization."""
