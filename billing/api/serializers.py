"""Field types and a base serializer shared by every module's API."""

from datetime import date

from rest_framework import serializers

from billing.money import InvalidMoney, validate_currency


class StrictInputSerializer(serializers.Serializer):
    """An input serializer that rejects fields it does not declare, naming each one."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["unknown field; remove it or check its spelling"] for name in unknown}
                )
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer and nothing else: no float such as 10.0, no string, no boolean."""

    default_error_messages = {"invalid": "must be a JSON integer, such as 2990 for 29.90"}

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("invalid")
        return super().to_internal_value(data)


class MinorUnitsField(StrictIntegerField):
    """An amount in integer minor units of its currency (cents for USD), never negative."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        super().__init__(**kwargs)


class CurrencyField(serializers.CharField):
    """An ISO 4217 currency code such as USD."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_length", 3)
        kwargs.setdefault("max_length", 3)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            return validate_currency(value)
        except InvalidMoney as error:
            raise serializers.ValidationError(str(error)) from None


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false; DRF's own field also takes "yes", 1 and "on"."""

    default_error_messages = {"invalid": "must be a JSON boolean, true or false"}

    def to_internal_value(self, data):
        if type(data) is not bool:
            self.fail("invalid")
        return data


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    """The body of every error response."""

    error = ErrorDetailSerializer()


class BillingDateField(serializers.DateField):
    """A YYYY-MM-DD date between 1970-01-01 and 2199-12-31.

    Billing periods are computed by adding intervals to dates, which raises
    OverflowError near the ends of Python's date range (years 1 and 9999).
    No real billing date lies outside these bounds.
    """

    MIN_DATE = date(1970, 1, 1)
    MAX_DATE = date(2199, 12, 31)

    default_error_messages = {"out_of_range": "must be between 1970-01-01 and 2199-12-31"}

    def to_internal_value(self, value):
        parsed = super().to_internal_value(value)
        if not self.MIN_DATE <= parsed <= self.MAX_DATE:
            self.fail("out_of_range")
        return parsed
