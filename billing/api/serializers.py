"""Field types and a base serializer shared by every module's API."""

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
