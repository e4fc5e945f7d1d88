"""hal.drivers"""
